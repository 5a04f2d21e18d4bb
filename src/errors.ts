// The one error type the app throws on purpose. The error handler turns it (and
// every other error) into the contract's shape: { statusCode, code, error, message }.

/** Every error code the API can answer with. Codes never change meaning. */
export const ERROR_CODES = {
  VALIDATION_FAILED: 'The request does not match the schema; `details` names each bad field.',
  PASSWORD_TOO_WEAK: 'The password is shorter than 8 or longer than 256 characters, or is a common password.',
  INVALID_LIST: '`listId` does not name one of your lists.',
  INVALID_CURSOR: 'The pagination cursor is malformed or was not issued for this query.',
  AUTH_REQUIRED: 'No access token was given.',
  ACCESS_TOKEN_INVALID:
    'The access token is malformed, tampered with, signed with another key or algorithm, or has the wrong issuer.',
  ACCESS_TOKEN_EXPIRED: 'The access token has expired; refresh it.',
  SESSION_REVOKED: 'The session of this token has been revoked or has ended.',
  INVALID_CREDENTIALS: 'Wrong email or password.',
  INVALID_CLIENT:
    'POST /auth/introspect: the client id and secret (HTTP Basic, INTROSPECTION_CLIENT_ID / INTROSPECTION_CLIENT_SECRET) are missing or wrong.',
  REFRESH_TOKEN_INVALID: 'The refresh token is missing, unknown, or its session has ended.',
  REFRESH_TOKEN_EXPIRED: 'The refresh token has expired; log in again.',
  REFRESH_TOKEN_REUSED: 'An already rotated refresh token was presented again; the session has been revoked.',
  MFA_TOKEN_INVALID:
    'POST /auth/mfa/verify: the mfaToken is unknown, already used, older than 5 minutes, or took 5 wrong codes; log in again.',
  MFA_CODE_INVALID:
    'The TOTP code or recovery code is wrong, or was already used (a TOTP code works once); counts as a failed login.',
  TOTP_ALREADY_ENABLED: 'TOTP is already on for this account; turn it off first to set up a new authenticator.',
  TOTP_NOT_ENABLED: 'The account has no TOTP factor (or its set-up was not started or is already confirmed).',
  PASSKEY_VERIFICATION_FAILED:
    'The WebAuthn response did not verify: unknown, used or expired challenge, wrong origin or RP ID, bad signature, a cloned authenticator (counter went back), or a passkey that is not registered (for this account).',
  PASSWORD_CONFIRMATION_REQUIRED: 'This change needs a password-confirmation token of the current session.',
  ACCOUNT_DISABLED:
    'An operator disabled this account (latchkey users disable): it cannot sign in or refresh, and its sessions have ended.',
  CSRF_REJECTED: 'A cookie-authenticated request came from an origin that is not allowed.',
  NOT_FOUND: 'No such route or resource (or it belongs to another user).',
  EMAIL_TAKEN: 'That email is already registered.',
  EMAIL_NOT_VERIFIED:
    'REQUIRE_EMAIL_VERIFICATION is on and the address is not verified yet: follow the link of the verification mail (POST /auth/email-verification sends another).',
  TOKEN_INVALID:
    "The token of a mailed link (verification, password reset, email change, sign-in link) is unknown, already used, for another purpose, or no longer matches the account's address.",
  TOKEN_EXPIRED: 'The token of a mailed link has expired; ask for a new mail.',
  PAYLOAD_TOO_LARGE: 'The body is larger than BODY_LIMIT.',
  UNSUPPORTED_MEDIA_TYPE: 'Bodies must be application/json.',
  BAD_REQUEST: 'The request is not valid HTTP (a malformed request line, an invalid character in a header, ...).',
  HEADERS_TOO_LARGE: 'The request headers are larger than the server accepts (about 16 KiB in all).',
  REQUEST_TIMEOUT:
    'The request did not arrive in full within HEADERS_TIMEOUT (headers) or REQUEST_TIMEOUT (all of it).',
  RATE_LIMITED: 'Too many requests; retry after the number of seconds in Retry-After.',
  SERVICE_UNAVAILABLE: 'The database (or a configured Redis) does not answer; retry after Retry-After seconds.',
  SERVER_BUSY: 'More than HASH_QUEUE_MAX password checks are already waiting; retry after Retry-After seconds.',
  DATABASE_BUSY:
    'Another process held the SQLite database write lock for longer than DATABASE_BUSY_TIMEOUT; retry after Retry-After seconds.',
  STORAGE_FULL:
    'The disk that holds the database is full (507; /ready answers 503 with this code while it lasts); writes fail until space is freed. Retry after Retry-After seconds.',
  SHUTTING_DOWN:
    'The server is shutting down and takes no new requests; retry (on another instance) after Retry-After seconds.',
  INTERNAL_ERROR: 'An unexpected error; details are in the server log under the request id.',
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface ErrorDetail {
  field: string
  message: string
}

export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    /** Extra response headers, such as `Retry-After` or `WWW-Authenticate`. */
    readonly headers?: Record<string, string>,
  ) {
    super(message)
    this.name = 'AppError'
  }
}

export const notFound = (what = 'Resource'): AppError => new AppError(404, 'NOT_FOUND', `${what} not found`)

export function weakPassword(field: string, reason: string): AppError {
  return new AppError(400, 'PASSWORD_TOO_WEAK', `The password ${reason}`, [{ field, message: reason }])
}

export function loginThrottled(waitSeconds: number): AppError {
  return new AppError(429, 'RATE_LIMITED', `Too many failed attempts; retry in ${waitSeconds} seconds`, undefined, {
    'Retry-After': String(waitSeconds),
  })
}

export const invalidCredentials = (): AppError => new AppError(401, 'INVALID_CREDENTIALS', 'Wrong email or password')

export const accountDisabled = (): AppError =>
  new AppError(403, 'ACCOUNT_DISABLED', 'This account is disabled; contact the operator')
