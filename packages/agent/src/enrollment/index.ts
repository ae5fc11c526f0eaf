export {
  loadOrEnroll,
  identityCredentials,
  fetchPinnedCa,
  normalizeFingerprint,
  EnrollmentError,
  type AgentIdentity,
  type EnrollOptions,
} from './enrollment.js';
