// Table types: the one description of the database that Kysely checks every
// query against. Timestamps are milliseconds since the epoch (integers sort and
// compare the same way in SQLite and PostgreSQL); the API turns them into ISO 8601.
import type { Generated, Insertable, Selectable, Updateable } from 'kysely'

export interface UsersTable {
  id: string
  email: string
  display_name: string | null
  password_hash: string
  created_at: number
  updated_at: number
  /** Set by `latchkey users disable`: the account cannot sign in, refresh or use an access token. */
  disabled_at: number | null
}

export interface SessionsTable {
  id: string
  user_id: string
  created_at: number
  last_used_at: number
  /** When the current refresh token runs out: the session is active until then. */
  expires_at: number
  /** The session's absolute end (`SESSION_MAX_AGE` after sign-in); rotation never passes it. */
  absolute_expires_at: number
  revoked_at: number | null
  user_agent: string | null
  ip: string | null
  /** How the session was started (SIGN_IN_METHODS in src/auth/sessions.ts); null for sessions from before it was recorded. */
  sign_in_method: string | null
}

export interface RefreshTokensTable {
  /** Keyed hash of the token; the token itself is never stored. */
  token_hash: string
  session_id: string
  created_at: number
  expires_at: number
  /** Set when the token was rotated; presenting it again is reuse (after the grace window). */
  used_at: number | null
}

/** Device cookies: not credentials, only proof that a client signed in to the user's account before. */
export interface DeviceTokensTable {
  /** Keyed hash of the cookie's value; the value itself is never stored. */
  token_hash: string
  user_id: string
  created_at: number
  expires_at: number
}

/**
 * Signing keys of access tokens. State follows from the dates: `next` before
 * `activates_at`, `current` until `retires_at`, `retired` (verifies, never signs)
 * until `expires_at`; `revoked_at` ends it at once.
 */
export interface SigningKeysTable {
  kid: string
  /** JOSE algorithm: EdDSA or ES256. */
  algorithm: string
  /** The public key as a JWK (JSON text). */
  public_jwk: string
  /** Sealed PKCS#8 private key (nonce, AES-256-GCM ciphertext, tag); null once the key no longer signs. */
  private_key: Uint8Array | null
  /** Fingerprint of the key that sealed `private_key`. */
  encryption_key_id: string | null
  created_at: number
  activates_at: number
  retires_at: number | null
  expires_at: number | null
  revoked_at: number | null
}

/** The address each user proved they receive mail at; verified while it is still the user's address. */
export interface EmailVerificationsTable {
  user_id: string
  email: string
  verified_at: number
}

/** Tokens of verification, reset, email-change and sign-in mails (src/auth/one-time-tokens.ts). */
export interface OneTimeTokensTable {
  /** Keyed hash of the purpose and the token; the token itself is never stored. */
  token_hash: string
  purpose: string
  user_id: string
  /** The address the token was mailed to, and that it is bound to. */
  email: string
  created_at: number
  expires_at: number
}

/** Mails to send (src/mail/queue.ts): jobs that hold no token; the sender writes the mail. */
export interface MailQueueTable {
  id: string
  purpose: string
  recipient: string
  user_id: string | null
  /** JSON of the job's other fields (never a token). */
  payload: string
  created_at: number
  attempts: Generated<number>
  /** When the job is due, or until when a claim holds it; null once given up. */
  next_attempt_at: number | null
  /** The claim of the sender that holds the job now. */
  claim_id: string | null
  /** The last failure, as an error code (never a message that could hold an address). */
  last_error: string | null
  failed_at: number | null
}

/** The per-user security event log (src/auth/security-events.ts); no foreign key: `account_deleted` outlives its user. */
export interface SecurityEventsTable {
  id: string
  user_id: string
  type: string
  /** The session the event is about (the one signed in, logged out, revoked, ...), if any. */
  session_id: string | null
  ip: string | null
  user_agent: string | null
  created_at: number
  /** When the cleanup deletes it: created_at + SECURITY_EVENT_RETENTION, fixed when written. */
  expires_at: number
}

/** A user's TOTP secret, sealed like secret messages (src/auth/totp.ts). */
export interface TotpCredentialsTable {
  user_id: string
  key_id: string
  nonce: Uint8Array
  ciphertext: Uint8Array
  created_at: number
  /** Null while set-up waits for its first code: the account has no TOTP factor yet. */
  confirmed_at: number | null
  /** The newest time step a code was accepted for; codes of that step or older are refused. */
  last_used_step: number | null
}

/** Recovery codes, as keyed hashes only (src/auth/recovery-codes.ts); using one deletes it. */
export interface RecoveryCodesTable {
  code_hash: string
  user_id: string
  created_at: number
}

/** WebAuthn credentials (src/auth/passkeys.ts). */
export interface PasskeysTable {
  id: string
  user_id: string
  /** The credential id, base64url. */
  credential_id: string
  /** COSE public key. */
  public_key: Uint8Array
  /** The authenticator's signature counter (0 for authenticators that keep none). */
  counter: number
  /** JSON array of the transports the authenticator reported, if any. */
  transports: string | null
  /** `singleDevice` or `multiDevice` (synced). */
  device_type: string
  backed_up: number
  name: string
  created_at: number
  last_used_at: number | null
}

/** Short-lived single-use secrets any instance can finish: mfaTokens and WebAuthn challenges (src/auth/challenges.ts). */
export interface AuthChallengesTable {
  /** Keyed hash of the purpose and the secret; the secret itself is never stored. */
  challenge_hash: string
  purpose: string
  user_id: string | null
  session_id: string | null
  /** Purpose-specific detail (JSON), never a secret. */
  detail: string | null
  attempts: Generated<number>
  created_at: number
  expires_at: number
}

export interface ListsTable {
  id: string
  user_id: string
  title: string
  description: string | null
  created_at: number
  updated_at: number
}

export interface TasksTable {
  id: string
  user_id: string
  list_id: string | null
  title: string
  completed: Generated<number>
  due_at: number | null
  notes: string | null
  created_at: number
  updated_at: number
}

export interface SecretsTable {
  id: string
  user_id: string
  /** Identifies the data-encryption key, so keys can be rotated later. */
  key_id: string
  nonce: Uint8Array
  /** AES-256-GCM ciphertext followed by its 16-byte tag. */
  ciphertext: Uint8Array
  created_at: number
  updated_at: number
}

export interface Database {
  users: UsersTable
  sessions: SessionsTable
  refresh_tokens: RefreshTokensTable
  device_tokens: DeviceTokensTable
  signing_keys: SigningKeysTable
  email_verifications: EmailVerificationsTable
  one_time_tokens: OneTimeTokensTable
  mail_queue: MailQueueTable
  security_events: SecurityEventsTable
  totp_credentials: TotpCredentialsTable
  recovery_codes: RecoveryCodesTable
  passkeys: PasskeysTable
  auth_challenges: AuthChallengesTable
  lists: ListsTable
  tasks: TasksTable
  secrets: SecretsTable
}

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type SessionRow = Selectable<SessionsTable>
export type RefreshTokenRow = Selectable<RefreshTokensTable>
export type DeviceTokenRow = Selectable<DeviceTokensTable>
export type ListRow = Selectable<ListsTable>
export type TaskRow = Selectable<TasksTable>
export type SecretRow = Selectable<SecretsTable>
export type SigningKeyRow = Selectable<SigningKeysTable>
export type OneTimeTokenRow = Selectable<OneTimeTokensTable>
export type MailQueueRow = Selectable<MailQueueTable>
export type SecurityEventRow = Selectable<SecurityEventsTable>
export type TotpCredentialRow = Selectable<TotpCredentialsTable>
export type PasskeyRow = Selectable<PasskeysTable>
export type AuthChallengeRow = Selectable<AuthChallengesTable>
