export { startPlatform, type Platform, type PlatformState, type StartPlatformOptions } from './main.js';
export { resolveConfig, parseListen, DEFAULT_CONFIG, type PlatformConfig } from './config.js';
export { ERRORS, PlatformError, type ErrorCode } from './errors.js';
export { VERSION } from './version.js';
export { createApiTokenInDatabase, type CreatedToken } from './security/bootstrap.js';
export { ROLES, isRole } from './security/tokens.js';
