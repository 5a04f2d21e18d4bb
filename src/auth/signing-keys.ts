// Signing keys of access tokens, shared by every instance through the database.
//
// A key is an Ed25519 (EdDSA) or P-256 (ES256) pair; its private half is stored
// sealed (AES-256-GCM under a key derived from JWT_SECRET, src/auth/keys.ts) and
// wiped once it no longer signs; its public half is published in the JWKS. A
// key's state follows from its dates, so every instance reads the same state
// at the same moment and no job has to move it:
//   next     before `activates_at`: published, not yet signing
//   current  from `activates_at` until `retires_at`: signs new tokens
//   retired  until `expires_at`: verifies the tokens it signed, which all expire by then
//   revoked  `revoked_at` set: verifies nothing, at once
// A rotation publishes a `next` key one JWKS cache lifetime before it signs
// (resource servers have fetched it by then) and keeps the old key published
// for one access-token lifetime after (its tokens stay verifiable): no token is
// ever refused that should still be good. Changes (rotate, revoke, the first
// key) run in one transaction under a lock, so N instances that start together
// on an empty database create exactly one key.
//
// Verification is strict: a token's `kid` names one key, and only that key's
// algorithm is accepted (no HS256 signed with a public key, never `none`);
// header fields like `jku`, `jwk` or `x5u` are never read. With
// JWT_ALGORITHM=HS256, access tokens are signed and verified with a key derived
// from JWT_SECRET instead, and the database keys are not used.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { decodeProtectedHeader, errors, exportJWK, type JWTPayload, jwtVerify, SignJWT } from 'jose'
import { type Kysely, PostgresAdapter, sql, type Transaction } from 'kysely'
import type { Clock } from '../clock.js'
import type { AccessTokenAlgorithm } from '../config.js'
import type { Database, SigningKeyRow } from '../db/database.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database> | Transaction<Database>

export type SigningAlgorithm = Exclude<AccessTokenAlgorithm, 'HS256'>
export type KeyState = 'next' | 'current' | 'retired' | 'expired' | 'revoked'

/** Seconds resource servers may cache the JWKS; a new key is published this long before it signs. */
export const JWKS_MAX_AGE = 300
/** How often every instance re-reads the key set (and so sees a revocation or rotation made elsewhere). */
export const KEY_SET_REFRESH_MS = 1000
/** Least time between two re-reads caused by tokens naming an unknown `kid` (which anyone can send). */
const UNKNOWN_KID_RELOAD_MS = 1000
/** A retired key stays published this much longer than its last token could live: instances' clocks differ. */
const CLOCK_LEEWAY_MS = 60_000
/** Claims every access token carries. */
const REQUIRED_CLAIMS = ['sub', 'sid', 'jti', 'iat', 'exp', 'iss']
const NONCE_BYTES = 12
const TAG_BYTES = 16

export interface AccessTokenPolicy {
  /** Algorithm of new keys (and of every token with HS256). */
  algorithm: AccessTokenAlgorithm
  issuer: string
  audience: string | undefined
  /** Seconds: the longest access-token lifetime, which a retired key stays published for. */
  accessTokenTtl: number
  /** Seconds between automatic rotations; undefined: only `latchkey keys rotate`. */
  rotationInterval: number | undefined
}

export function accessTokenPolicy(config: {
  jwtAlgorithm: AccessTokenAlgorithm
  jwtIssuer: string
  jwtAudience: string | undefined
  accessTokenTtl: number
  jwtKeyRotation: number | undefined
}): AccessTokenPolicy {
  return {
    algorithm: config.jwtAlgorithm,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    accessTokenTtl: config.accessTokenTtl,
    rotationInterval: config.jwtKeyRotation,
  }
}

type Dates = Pick<SigningKeyRow, 'activates_at' | 'retires_at' | 'expires_at' | 'revoked_at'>

export function stateOf(key: Dates, at: number): KeyState {
  if (key.revoked_at !== null) return 'revoked'
  if (at < key.activates_at) return 'next'
  if (key.retires_at === null || at < key.retires_at) return 'current'
  if (key.expires_at === null || at < key.expires_at) return 'retired'
  return 'expired'
}

// --- Sealing private keys -------------------------------------------------------

/** Associated data naming the row, so a sealed key moved to another row fails to open. */
const sealedFor = (kid: string, algorithm: string) => Buffer.from(`latchkey signing key ${kid} ${algorithm}`, 'utf8')

function sealPrivateKey(keys: Keys, kid: string, algorithm: string, privateKey: KeyObject): Buffer {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', keys.signingKeyEncryption, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(sealedFor(kid, algorithm))
  const der = privateKey.export({ format: 'der', type: 'pkcs8' })
  const body = Buffer.concat([cipher.update(der), cipher.final()])
  der.fill(0)
  return Buffer.concat([nonce, body, cipher.getAuthTag()])
}

/** The private key of a row; throws a plain Error (no key material in it) when it cannot be opened. */
export function openPrivateKey(
  keys: Keys,
  row: Pick<SigningKeyRow, 'kid' | 'algorithm' | 'private_key' | 'encryption_key_id'>,
) {
  if (!row.private_key) throw new Error(`signing key ${row.kid} has no private key (it no longer signs)`)
  if (row.encryption_key_id !== keys.signingKeyEncryptionId) {
    throw new Error(
      `signing key ${row.kid} was sealed under another JWT_SECRET: restore that secret, or replace the key with \`latchkey keys revoke ${row.kid}\``,
    )
  }
  const sealed = Buffer.from(row.private_key)
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new Error(`signing key ${row.kid} is malformed`)
  const decipher = createDecipheriv('aes-256-gcm', keys.signingKeyEncryption, sealed.subarray(0, NONCE_BYTES), {
    authTagLength: TAG_BYTES,
  })
  decipher.setAAD(sealedFor(row.kid, row.algorithm))
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
  let der: Buffer
  try {
    der = Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()])
  } catch {
    throw new Error(`signing key ${row.kid} failed authentication (tampered, or sealed under another JWT_SECRET)`)
  }
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  } finally {
    der.fill(0)
  }
}

// --- Changes, each in one locked transaction ---------------------------------------

const isPostgres = (db: Db): boolean => db.getExecutor().adapter instanceof PostgresAdapter

/**
 * Runs `fn` in a transaction that holds the signing-key lock: PostgreSQL's
 * transaction-scoped advisory lock (keyed by the schema too), SQLite's write
 * lock (every transaction here begins IMMEDIATE). Waiting instances then see
 * what the first one wrote.
 */
function locked<T>(db: Kysely<Database>, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    if (isPostgres(trx)) {
      await sql`select pg_advisory_xact_lock(hashtext(${'latchkey:signing-keys:'} || current_schema()))`.execute(trx)
    }
    return fn(trx)
  })
}

async function newKey(
  keys: Keys,
  algorithm: SigningAlgorithm,
  at: number,
  activatesAt: number,
): Promise<SigningKeyRow> {
  const { privateKey, publicKey } =
    algorithm === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  // Readable in `latchkey keys list`, and never starting with "-" (it is a command-line argument too).
  const kid = `${new Date(at).toISOString().slice(0, 10)}-${randomBytes(9).toString('base64url')}`
  const { kty, crv, x, y } = await exportJWK(publicKey)
  return {
    kid,
    algorithm,
    public_jwk: JSON.stringify({ kty, crv, x, ...(y ? { y } : {}) }),
    private_key: sealPrivateKey(keys, kid, algorithm, privateKey),
    encryption_key_id: keys.signingKeyEncryptionId,
    created_at: at,
    activates_at: activatesAt,
    retires_at: null,
    expires_at: null,
    revoked_at: null,
  }
}

const liveRows = (trx: Db) => trx.selectFrom('signing_keys').selectAll().where('revoked_at', 'is', null).execute()

const signingAlgorithmOf = (policy: AccessTokenPolicy): SigningAlgorithm => {
  if (policy.algorithm === 'HS256') throw new Error('JWT_ALGORITHM=HS256 uses no database keys')
  return policy.algorithm
}

/** The key that signs at `at`: the current one activated last. */
function currentOf<T extends Dates>(rows: readonly T[], at: number): T | undefined {
  let found: T | undefined
  for (const row of rows) {
    if (stateOf(row, at) === 'current' && (!found || row.activates_at > found.activates_at)) found = row
  }
  return found
}

const pendingOf = <T extends Dates>(rows: readonly T[], at: number): T | undefined =>
  rows.find((row) => stateOf(row, at) === 'next')

/** Private keys that can no longer sign anything are destroyed. */
async function wipeExpiredPrivateKeys(trx: Db, at: number): Promise<void> {
  await trx
    .updateTable('signing_keys')
    .set({ private_key: null, encryption_key_id: null })
    .where('private_key', 'is not', null)
    .where('expires_at', '<=', at)
    .execute()
}

/**
 * Makes sure a key signs now: the first start on an empty database creates it
 * (one, whatever the number of instances starting together). Returns the new kid.
 */
export async function ensureCurrentKey(
  db: Kysely<Database>,
  keys: Keys,
  policy: AccessTokenPolicy,
  at: number,
): Promise<string | undefined> {
  if (policy.algorithm === 'HS256') return undefined
  return locked(db, async (trx) => {
    const rows = await liveRows(trx)
    if (currentOf(rows, at)) return undefined
    return makeCurrentNow(trx, keys, policy, rows, at)
  })
}

/** With no current key: promotes a pending one at once, else creates one. */
async function makeCurrentNow(
  trx: Transaction<Database>,
  keys: Keys,
  policy: AccessTokenPolicy,
  rows: readonly SigningKeyRow[],
  at: number,
): Promise<string> {
  const pending = pendingOf(rows, at)
  if (pending) {
    await trx.updateTable('signing_keys').set({ activates_at: at }).where('kid', '=', pending.kid).execute()
    return pending.kid
  }
  const key = await newKey(keys, signingAlgorithmOf(policy), at, at)
  await trx.insertInto('signing_keys').values(key).execute()
  return key.kid
}

export type RotationResult =
  /** A new key was published; it signs from `next.activatesAt`, when `current` retires. */
  | { kind: 'started'; next: KeyView; current: KeyView }
  /** There was no key: one was created and signs now. */
  | { kind: 'created'; current: KeyView }
  /** A rotation is already under way. */
  | { kind: 'pending'; next: KeyView }
  /** `ifDue` and the current key is younger than the rotation interval. */
  | { kind: 'not-due' }

/**
 * Starts a rotation: publishes a new key (of the configured algorithm) as
 * `next`, which becomes current one JWKS cache lifetime later; the current key
 * then retires, and leaves the JWKS one access-token lifetime after that.
 */
export async function rotateKeys(
  db: Kysely<Database>,
  keys: Keys,
  policy: AccessTokenPolicy,
  at: number,
  options: { ifDue?: boolean } = {},
): Promise<RotationResult> {
  const algorithm = signingAlgorithmOf(policy)
  return locked(db, async (trx) => {
    await wipeExpiredPrivateKeys(trx, at)
    const rows = await liveRows(trx)
    const pending = pendingOf(rows, at)
    if (pending) return { kind: 'pending', next: viewOf(pending, at) }
    const current = currentOf(rows, at)
    if (options.ifDue) {
      const interval = policy.rotationInterval
      if (interval === undefined || (current && at < current.activates_at + interval * 1000)) return { kind: 'not-due' }
    }
    if (!current) {
      const kid = await makeCurrentNow(trx, keys, policy, rows, at)
      const created = await trx.selectFrom('signing_keys').selectAll().where('kid', '=', kid).executeTakeFirstOrThrow()
      return { kind: 'created', current: viewOf(created, at) }
    }
    const activatesAt = at + JWKS_MAX_AGE * 1000
    const next = await newKey(keys, algorithm, at, activatesAt)
    await trx.insertInto('signing_keys').values(next).execute()
    const retirement = {
      retires_at: activatesAt,
      expires_at: activatesAt + policy.accessTokenTtl * 1000 + CLOCK_LEEWAY_MS,
    }
    await trx.updateTable('signing_keys').set(retirement).where('kid', '=', current.kid).execute()
    return { kind: 'started', next: viewOf(next, at), current: viewOf({ ...current, ...retirement }, at) }
  })
}

export type RevocationResult =
  | { kind: 'unknown' }
  | { kind: 'already'; key: KeyView }
  /** `replacement`: the key that signs now, when the revoked one was current. */
  | { kind: 'revoked'; key: KeyView; wasState: KeyState; replacement?: KeyView }

/**
 * Revokes a key at once: it verifies nothing from now on (on every instance as
 * soon as it re-reads the key set) and its private key is destroyed. A revoked
 * current key is replaced at once (by the pending key if there is one);
 * revoking a pending key cancels its rotation.
 */
export async function revokeKey(
  db: Kysely<Database>,
  keys: Keys,
  policy: AccessTokenPolicy,
  kid: string,
  at: number,
): Promise<RevocationResult> {
  return locked(db, async (trx) => {
    const row = await trx.selectFrom('signing_keys').selectAll().where('kid', '=', kid).executeTakeFirst()
    if (!row) return { kind: 'unknown' }
    if (row.revoked_at !== null) return { kind: 'already', key: viewOf(row, at) }
    const wasState = stateOf(row, at)
    const revoked = { revoked_at: at, private_key: null, encryption_key_id: null }
    await trx.updateTable('signing_keys').set(revoked).where('kid', '=', kid).execute()
    const rows = await liveRows(trx)
    let replacement: KeyView | undefined
    if (wasState === 'current' && policy.algorithm !== 'HS256' && !currentOf(rows, at)) {
      const newKid = await makeCurrentNow(trx, keys, policy, rows, at)
      const created = await trx
        .selectFrom('signing_keys')
        .selectAll()
        .where('kid', '=', newKid)
        .executeTakeFirstOrThrow()
      replacement = viewOf(created, at)
    }
    if (wasState === 'next') {
      // The key that was to retire when this one took over stays current.
      await trx
        .updateTable('signing_keys')
        .set({ retires_at: null, expires_at: null })
        .where('revoked_at', 'is', null)
        .where('retires_at', '=', row.activates_at)
        .execute()
    }
    return {
      kind: 'revoked',
      key: viewOf({ ...row, ...revoked }, at),
      wasState,
      ...(replacement ? { replacement } : {}),
    }
  })
}

export interface KeyView {
  kid: string
  algorithm: string
  state: KeyState
  createdAt: number
  activatesAt: number
  retiresAt: number | null
  expiresAt: number | null
  revokedAt: number | null
}

function viewOf(row: SigningKeyRow, at: number): KeyView {
  return {
    kid: row.kid,
    algorithm: row.algorithm,
    state: stateOf(row, at),
    createdAt: row.created_at,
    activatesAt: row.activates_at,
    retiresAt: row.retires_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  }
}

/** Every key, newest first. */
export async function listKeys(db: Db, at: number): Promise<KeyView[]> {
  const rows = await db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').execute()
  return rows.map((row) => viewOf(row, at))
}

// --- The key ring: what one instance signs and verifies with ---------------------

/** A key as the ring holds it. */
interface RingKey {
  kid: string
  algorithm: AccessTokenAlgorithm
  activatesAt: number
  retiresAt: number | null
  expiresAt: number | null
  verifyKey: KeyObject | Uint8Array
  /** The public JWK (asymmetric keys only). */
  jwk: Pick<PublicJwk, 'kty' | 'crv' | 'x' | 'y'> | undefined
  row: SigningKeyRow | undefined
}

export interface PublicJwk {
  kty: string
  crv: string
  x: string
  y?: string
  kid: string
  alg: string
  use: 'sig'
}

export type TokenCheck = { ok: true; kid: string; payload: JWTPayload } | { ok: false; expired: boolean }

export interface KeyRingOptions {
  /** Where failures of the background re-read go (never with key material). */
  warn?: (message: string, error?: unknown) => void
  info?: (message: string, fields?: Record<string, unknown>) => void
}

export type KeyRing = ReturnType<typeof createKeyRing>

/** The `kid` of HS256 tokens: a public fingerprint of the derived key, the same on every instance. */
export const hs256KeyId = (keys: Keys): string =>
  `hs256-${createHash('sha256').update('latchkey kid').update(keys.accessToken).digest('base64url').slice(0, 16)}`

/**
 * The keys this instance signs and verifies with: the database's set, re-read
 * every KEY_SET_REFRESH_MS and when a token names an unknown `kid` (at most once
 * per UNKNOWN_KID_RELOAD_MS, so a flood of made-up kids costs one read a
 * second); with HS256, the one key derived from JWT_SECRET.
 */
export function createKeyRing(
  db: Kysely<Database>,
  keys: Keys,
  policy: AccessTokenPolicy,
  clock: Clock,
  options: KeyRingOptions = {},
) {
  const hs256 = policy.algorithm === 'HS256'
  let ring = new Map<string, RingKey>()
  if (hs256) {
    const kid = hs256KeyId(keys)
    ring.set(kid, {
      kid,
      algorithm: 'HS256',
      activatesAt: 0,
      retiresAt: null,
      expiresAt: null,
      verifyKey: keys.accessToken,
      jwk: undefined,
      row: undefined,
    })
  }
  const privateKeys = new Map<string, KeyObject>()
  let reading: Promise<void> | undefined
  let lastUnknownReload = Number.NEGATIVE_INFINITY
  let timer: NodeJS.Timeout | undefined
  let maintaining: Promise<void> | undefined
  let lastWarning = 0

  async function read(): Promise<void> {
    const rows = await liveRows(db)
    const next = new Map<string, RingKey>()
    for (const row of rows) {
      const known = ring.get(row.kid)
      if (known?.row && known.row.public_jwk === row.public_jwk && known.algorithm === row.algorithm) {
        next.set(row.kid, {
          ...known,
          activatesAt: row.activates_at,
          retiresAt: row.retires_at,
          expiresAt: row.expires_at,
          row,
        })
        continue
      }
      if (row.algorithm !== 'EdDSA' && row.algorithm !== 'ES256') continue
      const jwk = JSON.parse(row.public_jwk) as NonNullable<RingKey['jwk']>
      next.set(row.kid, {
        kid: row.kid,
        algorithm: row.algorithm,
        activatesAt: row.activates_at,
        retiresAt: row.retires_at,
        expiresAt: row.expires_at,
        verifyKey: createPublicKey({ key: { ...jwk }, format: 'jwk' }),
        jwk,
        row,
      })
    }
    // A key that no longer signs (revoked, or its private key wiped) leaves memory too.
    for (const kid of privateKeys.keys()) if (!next.get(kid)?.row?.private_key) privateKeys.delete(kid)
    ring = next
  }

  /** Re-reads the key set (one read at a time; callers during a read share it). */
  function refresh(): Promise<void> {
    if (hs256) return Promise.resolve()
    reading ??= read().finally(() => {
      reading = undefined
    })
    return reading
  }

  const verifiesAt = (key: RingKey | undefined, at: number): key is RingKey =>
    key !== undefined && (key.expiresAt === null || at < key.expiresAt)

  async function keyNamed(kid: string, at: number): Promise<RingKey | undefined> {
    const key = ring.get(kid)
    if (verifiesAt(key, at)) return key
    if (hs256) return undefined
    if (reading) await reading
    else if (Date.now() - lastUnknownReload < UNKNOWN_KID_RELOAD_MS) return undefined
    else {
      lastUnknownReload = Date.now()
      await refresh()
    }
    const reread = ring.get(kid)
    return verifiesAt(reread, at) ? reread : undefined
  }

  function signerAt(at: number): RingKey | undefined {
    if (hs256) return ring.values().next().value
    let found: RingKey | undefined
    for (const key of ring.values()) {
      const current = at >= key.activatesAt && (key.retiresAt === null || at < key.retiresAt)
      if (current && (!found || key.activatesAt > found.activatesAt)) found = key
    }
    return found
  }

  function privateKeyOf(key: RingKey): KeyObject | Uint8Array {
    if (key.algorithm === 'HS256') return key.verifyKey
    let privateKey = privateKeys.get(key.kid)
    if (!privateKey) {
      if (!key.row) throw new Error(`signing key ${key.kid} is not in the database`)
      privateKey = openPrivateKey(keys, key.row)
      privateKeys.set(key.kid, privateKey)
    }
    return privateKey
  }

  async function signer(at: number): Promise<RingKey> {
    let key = signerAt(at)
    if (!key) {
      await refresh()
      key = signerAt(at)
    }
    if (!key) throw new Error('no signing key is current; run `latchkey keys rotate`')
    return key
  }

  function jwks(at: number): PublicJwk[] {
    const order: Record<KeyState, number> = { current: 0, next: 1, retired: 2, expired: 3, revoked: 4 }
    return [...ring.values()]
      .flatMap((key) => (key.jwk && key.row && verifiesAt(key, at) ? [{ key, state: stateOf(key.row, at) }] : []))
      .sort((a, b) => order[a.state] - order[b.state] || b.key.activatesAt - a.key.activatesAt)
      .map(({ key }) => ({
        ...(key.jwk as NonNullable<RingKey['jwk']>),
        kid: key.kid,
        alg: key.algorithm,
        use: 'sig' as const,
      }))
  }

  async function maintain(): Promise<void> {
    await refresh()
    const interval = policy.rotationInterval
    if (hs256) return
    const at = clock.now()
    const expiredPrivate = [...ring.values()].some(
      (key) => key.row?.private_key && key.expiresAt !== null && at >= key.expiresAt,
    )
    const current = signerAt(at)
    const pending = [...ring.values()].some((key) => at < key.activatesAt)
    const due =
      interval !== undefined && current !== undefined && !pending && at >= current.activatesAt + interval * 1000
    if (due) {
      const result = await rotateKeys(db, keys, policy, at, { ifDue: true })
      if (result.kind === 'started') {
        options.info?.('signing key rotation started (JWT_KEY_ROTATION)', {
          kid: result.next.kid,
          activatesAt: new Date(result.next.activatesAt).toISOString(),
        })
      }
      await refresh()
    } else if (expiredPrivate) {
      await wipeExpiredPrivateKeys(db, at)
      await refresh()
    }
  }

  return {
    refresh,

    /**
     * Checks at start-up that this instance can sign: the current key opens
     * with this JWT_SECRET. Throws a one-line error naming the way out.
     */
    async assertCanSign(at: number): Promise<void> {
      privateKeyOf(await signer(at))
    },

    /** The key that signs at `at`, if this instance knows one. */
    current(at: number): { kid: string; algorithm: AccessTokenAlgorithm } | undefined {
      const key = signerAt(at)
      return key && { kid: key.kid, algorithm: key.algorithm }
    },

    /** Signs an access token's claims with the current key (its `kid` and algorithm in the header). */
    async sign(claims: JWTPayload, at: number): Promise<string> {
      const key = await signer(at)
      return new SignJWT(claims)
        .setProtectedHeader({ alg: key.algorithm, kid: key.kid, typ: 'JWT' })
        .sign(privateKeyOf(key))
    },

    /**
     * Verifies a token's signature, algorithm (the one of the key its `kid`
     * names, nothing else), issuer, audience and required claims, and its
     * expiry against `at`: a token is valid while `at` < `exp`.
     */
    async verify(token: string, at: number): Promise<TokenCheck> {
      let kid: unknown
      let alg: unknown
      try {
        ;({ kid, alg } = decodeProtectedHeader(token))
      } catch {
        return { ok: false, expired: false }
      }
      if (typeof kid !== 'string' || typeof alg !== 'string' || kid.length > 64) return { ok: false, expired: false }
      const key = await keyNamed(kid, at)
      if (!key || key.algorithm !== alg) return { ok: false, expired: false }
      try {
        const { payload } = await jwtVerify(token, key.verifyKey, {
          algorithms: [key.algorithm],
          issuer: policy.issuer,
          ...(policy.audience !== undefined ? { audience: policy.audience } : {}),
          requiredClaims: REQUIRED_CLAIMS,
          currentDate: new Date(at),
        })
        return { ok: true, kid, payload }
      } catch (error) {
        return { ok: false, expired: error instanceof errors.JWTExpired }
      }
    },

    /** Whether tokens of `kid` still verify at `at` (not revoked, not past its key's expiry). */
    verifies(kid: string, at: number): boolean {
      return verifiesAt(ring.get(kid), at)
    },

    /** The public keys that may verify a live token: current, next, and retired until they expire. */
    jwks,

    /** Algorithms of the published keys (for discovery); the configured one when none is published. */
    algorithms(at: number): string[] {
      const published = new Set(jwks(at).map((key) => key.alg))
      return published.size > 0 ? [...published] : [policy.algorithm]
    },

    /** Re-reads the key set every KEY_SET_REFRESH_MS, and rotates on JWT_KEY_ROTATION's schedule. */
    start(): void {
      if (hs256 || timer) return
      timer = setInterval(() => {
        if (maintaining) return
        maintaining = maintain()
          .catch((error: unknown) => {
            // The last key set stays in use; one warning a minute at most.
            if (Date.now() - lastWarning > 60_000) {
              lastWarning = Date.now()
              options.warn?.('could not re-read the signing keys; the last ones read stay in use', error)
            }
          })
          .finally(() => {
            maintaining = undefined
          })
      }, KEY_SET_REFRESH_MS)
      timer.unref()
    },

    /** Stops the re-reads and waits for one under way (before the database closes). */
    async stop(): Promise<void> {
      if (timer) clearInterval(timer)
      timer = undefined
      await maintaining
      await reading?.catch(() => {})
    },

    /** One re-read and, if due, a rotation, as the timer runs them (tests call it to skip the wait). */
    maintain,
  }
}
