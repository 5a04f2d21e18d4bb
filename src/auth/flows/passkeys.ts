// Passkey ceremonies (WebAuthn, by @simplewebauthn/server). Registration needs a
// signed-in user who confirmed their password; sign-in needs nothing else: a
// passkey is discoverable (the authenticator offers the accounts it holds, no
// email is typed) and counts as both factors, since the authenticator checks
// its user (user verification is required). Every challenge is stored
// (src/auth/challenges.ts), so the instance that finishes a ceremony need not be
// the one that started it; it is used once, by the first response that names
// it, whether or not that response verifies, and lasts five minutes.
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server'
import { AppError } from '../../errors.js'
import { CHALLENGE_TTL_MS, type ChallengePurpose, issueChallenge, takeChallenge } from '../challenges.js'
import {
  deletePasskey,
  findPasskeyByCredentialId,
  insertPasskey,
  listPasskeys,
  type PasskeyView,
  recordPasskeyUse,
  toPasskeyView,
} from '../passkeys.js'
import { findUserById, type UserAccount } from '../users.js'
import type { EmailFlowContext } from './email-context.js'
import type { Caller } from './second-factor.js'

/** The relying party a ceremony runs for: its RP ID and the page origins allowed to run it. */
export interface RelyingParty {
  id: string
  name: string
  origins: string[]
}

/**
 * The relying party of a request: the configured one; on localhost (the RP ID
 * `localhost`), also the request's own origin if it is a localhost page, so a
 * development server on any port works with no settings.
 */
export function relyingPartyFor(
  settings: { webauthnRpId: string; webauthnOrigins: readonly string[] },
  originHeader: string | undefined,
): RelyingParty {
  const origins = [...settings.webauthnOrigins]
  if (settings.webauthnRpId === 'localhost' && originHeader !== undefined) {
    try {
      const origin = new URL(originHeader)
      if (origin.hostname === 'localhost' && origin.origin === originHeader && !origins.includes(originHeader)) {
        origins.push(originHeader)
      }
    } catch {
      // Not a URL: not an origin either.
    }
  }
  return { id: settings.webauthnRpId, name: 'latchkey', origins }
}

const failed = (status: 400 | 401) =>
  new AppError(status, 'PASSKEY_VERIFICATION_FAILED', 'The passkey could not be verified')

/** The challenge a response answers, read from its client data (verified by the library afterwards). */
function challengeOf(clientDataJSON: string): string | undefined {
  try {
    const clientData: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'))
    const challenge = (clientData as { challenge?: unknown } | null)?.challenge
    return typeof challenge === 'string' ? challenge : undefined
  } catch {
    return undefined
  }
}

/** Takes the stored challenge a response names: once, for `purpose`, unexpired. */
async function takeAnsweredChallenge(context: EmailFlowContext, purpose: ChallengePurpose, clientDataJSON: string) {
  const challenge = challengeOf(clientDataJSON)
  if (challenge === undefined) return undefined
  const taken = await takeChallenge(context.db, context.keys, purpose, challenge, context.clock.now())
  return taken.ok ? { challenge, ...taken } : undefined
}

/** Options for navigator.credentials.create(): a new passkey for the caller. */
export async function passkeyRegistrationOptions(
  context: EmailFlowContext,
  caller: Caller,
  rp: RelyingParty,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const user = await findUserById(context.db, caller.userId)
  if (!user) throw failed(400)
  const existing = await listPasskeys(context.db, user.id)
  const challenge = await issueChallenge(
    context.db,
    context.keys,
    'passkey-registration',
    { userId: user.id, sessionId: caller.sessionId },
    context.clock.now(),
  )
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user.email,
    userDisplayName: user.display_name ?? user.email,
    userID: Buffer.from(user.id, 'utf8'),
    challenge: Buffer.from(challenge, 'base64url'),
    timeout: CHALLENGE_TTL_MS,
    attestationType: 'none',
    excludeCredentials: existing.map((passkey) => ({
      id: passkey.credential_id,
      ...(passkey.transports ? { transports: JSON.parse(passkey.transports) as string[] } : {}),
    })),
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  })
}

/** Verifies the authenticator's answer to the registration options and stores the passkey. */
export async function registerPasskey(
  context: EmailFlowContext,
  caller: Caller,
  rp: RelyingParty,
  input: { response: RegistrationResponseJSON; name?: string | undefined },
): Promise<PasskeyView> {
  const taken = await takeAnsweredChallenge(context, 'passkey-registration', input.response.response.clientDataJSON)
  // Started by this very session: a challenge of another user (or session) is refused.
  if (!taken || taken.userId !== caller.userId || taken.sessionId !== caller.sessionId) throw failed(400)
  let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>
  try {
    verified = await verifyRegistrationResponse({
      response: input.response,
      expectedChallenge: taken.challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      requireUserVerification: true,
    })
  } catch {
    throw failed(400)
  }
  if (!verified.verified) throw failed(400)
  const { credential, credentialDeviceType, credentialBackedUp } = verified.registrationInfo
  const at = context.clock.now()
  const { userId, sessionId, ip, userAgent } = caller
  return context.db.transaction().execute(async (trx) => {
    const row = await insertPasskey(
      trx,
      {
        userId,
        credentialId: credential.id,
        publicKey: credential.publicKey,
        counter: credential.counter,
        transports: credential.transports,
        deviceType: credentialDeviceType,
        backedUp: credentialBackedUp,
        name: input.name ?? defaultName(credentialDeviceType),
      },
      at,
    )
    if (!row) throw failed(400)
    await context.events.record(trx, { type: 'passkey_added', userId, sessionId, ip, userAgent })
    return toPasskeyView(row)
  })
}

const defaultName = (deviceType: string) => (deviceType === 'multiDevice' ? 'Synced passkey' : 'Passkey')

/** Removes one of the caller's passkeys; false if they have none with that id. */
export async function removePasskey(context: EmailFlowContext, caller: Caller, id: string): Promise<boolean> {
  const { userId, sessionId, ip, userAgent } = caller
  return context.db.transaction().execute(async (trx) => {
    if (!(await deletePasskey(trx, userId, id))) return false
    await context.events.record(trx, { type: 'passkey_removed', userId, sessionId, ip, userAgent })
    return true
  })
}

/** Options for navigator.credentials.get(): any passkey of this relying party (usernameless). */
export async function passkeyAuthenticationOptions(
  context: EmailFlowContext,
  rp: RelyingParty,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const challenge = await issueChallenge(context.db, context.keys, 'passkey-authentication', {}, context.clock.now())
  return generateAuthenticationOptions({
    rpID: rp.id,
    challenge: Buffer.from(challenge, 'base64url'),
    timeout: CHALLENGE_TTL_MS,
    allowCredentials: [],
    userVerification: 'required',
  })
}

/**
 * Verifies a passkey assertion and answers its owner. With `expectedUserId`
 * (a step-up), the passkey must be that user's.
 */
export async function authenticateWithPasskey(
  context: EmailFlowContext,
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  expectedUserId?: string,
): Promise<UserAccount> {
  const taken = await takeAnsweredChallenge(context, 'passkey-authentication', response.response.clientDataJSON)
  if (!taken) throw failed(401)
  const passkey = await findPasskeyByCredentialId(context.db, response.id)
  if (!passkey || (expectedUserId !== undefined && passkey.user_id !== expectedUserId)) throw failed(401)
  // The user handle is not signed; when given, it must name the credential's owner.
  const { userHandle } = response.response
  if (userHandle !== undefined && Buffer.from(userHandle, 'base64url').toString('utf8') !== passkey.user_id) {
    throw failed(401)
  }
  let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>
  try {
    verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: taken.challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      credential: {
        id: passkey.credential_id,
        publicKey: new Uint8Array(passkey.public_key),
        counter: Number(passkey.counter),
        ...(passkey.transports ? { transports: JSON.parse(passkey.transports) as string[] } : {}),
      },
      requireUserVerification: true,
    })
  } catch {
    // Includes a counter that did not grow: a cloned authenticator.
    throw failed(401)
  }
  if (!verified.verified) throw failed(401)
  const at = context.clock.now()
  if (!(await recordPasskeyUse(context.db, passkey, verified.authenticationInfo.newCounter, at))) throw failed(401)
  const user = await findUserById(context.db, passkey.user_id)
  if (!user) throw failed(401)
  return user
}
