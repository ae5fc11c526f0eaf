/**
 * The test harness's credentials. Tests where TLS is not what is under test run
 * the platform and agents with AP_INSECURE=1 (plaintext, loudly logged) and
 * this admin token (AP_BOOTSTRAP_TOKEN); test/e2e/security.test.ts runs the real
 * TLS path with enrollment.
 */
export const TEST_ADMIN_TOKEN = 'apt_test-harness-admin-token-0123456789';

/** `Authorization` for REST calls made by tests. */
export const AUTH_HEADERS: Readonly<Record<string, string>> = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

/** Environment for `apctl` processes started by tests: plaintext, the known admin token. */
export const TEST_PROCESS_ENV: Readonly<Record<string, string>> = {
  AP_INSECURE: '1',
  AP_BOOTSTRAP_TOKEN: TEST_ADMIN_TOKEN,
  APCTL_TOKEN: TEST_ADMIN_TOKEN,
};

/** startPlatform() options for in-process tests that are not about TLS. */
export const TEST_PLATFORM_OPTIONS = { insecure: true, bootstrapToken: TEST_ADMIN_TOKEN } as const;
