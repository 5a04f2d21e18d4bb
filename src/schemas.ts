// Schemas shared by several route folders. Each route's own schemas live in a
// `schema.ts` beside its `index.ts`.
import { type SchemaOptions, type TLiteral, type TNull, type TSchema, type TUnion, Type } from '@sinclair/typebox'
import { ERROR_CODES } from './errors.js'

/**
 * `schema` or null, written as OpenAPI 3.0's `nullable` rather than an `anyOf`
 * with null: Ajv validates both alike, but the response serializer would run a
 * validator on every value to choose an `anyOf` branch.
 */
export function Nullable<T extends TSchema>(schema: T, options: SchemaOptions = {}): TUnion<[T, TNull]> {
  // Typed as the union it means, so route handlers infer `T | null`.
  return { ...schema, ...options, nullable: true } as unknown as TUnion<[T, TNull]>
}

/** One of a few strings, as a plain `enum` (not an `anyOf` of constants; see Nullable). */
export function StringEnum<T extends string>(values: readonly T[], options: SchemaOptions = {}): TUnion<TLiteral<T>[]> {
  // Typed as the union of literals it means (see Nullable).
  return { type: 'string', enum: [...values], ...options } as unknown as TUnion<TLiteral<T>[]>
}

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer({ description: 'The HTTP status, repeated' }),
    code: StringEnum(Object.keys(ERROR_CODES), {
      description: 'Stable machine-readable code; see the list in the API description.',
    }),
    error: Type.String({ description: 'The HTTP reason phrase' }),
    message: Type.String({ description: 'For people; may change' }),
    details: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), {
        description: 'With VALIDATION_FAILED (and PASSWORD_TOO_WEAK): each bad field',
      }),
    ),
  },
  { title: 'Error', description: 'Every error answer has this shape.' },
)

/** What each error status means, as the OpenAPI document says it. */
export const ERROR_STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Invalid input (VALIDATION_FAILED, or a more specific code)',
  401: 'Not authenticated',
  403: 'Forbidden (CSRF_REJECTED, PASSWORD_CONFIRMATION_REQUIRED)',
  404: 'Not found (NOT_FOUND)',
  409: 'Conflict (EMAIL_TAKEN)',
  413: 'Body too large (PAYLOAD_TOO_LARGE)',
  415: 'Body is not JSON (UNSUPPORTED_MEDIA_TYPE)',
  429: 'Rate limited (RATE_LIMITED); see Retry-After',
  500: 'Unexpected error (INTERNAL_ERROR); details are only in the server log',
  503: 'Unavailable for now (SHUTTING_DOWN, SERVICE_UNAVAILABLE, DATABASE_BUSY, SERVER_BUSY); see Retry-After',
  507: 'The disk that holds the database is full (STORAGE_FULL); see Retry-After',
}

/**
 * Error responses of a route, each in the contract's error shape. The status
 * text goes in `x-response-description` (the response's description in the
 * OpenAPI document), so every error schema stays the same `Error`.
 */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(
    [...new Set([...statuses, 429])].map((status) => [
      status,
      { ...ErrorSchema, 'x-response-description': ERROR_STATUS_TEXT[status] ?? 'Error' },
    ]),
  )
}

/**
 * A documentation-only override, for a schema whose validation is looser than
 * the rule it stands for: plugins/openapi.ts merges the keyword's value into
 * the schema in the OpenAPI document (and drops the keyword); the app's
 * validators (Ajv, `strict: false`) ignore it.
 */
export const DOCUMENTED_AS = 'x-documented-as'

/**
 * A new password (sign-up, password change and reset). Validation only bounds
 * its size, so that the handler answers the policy's own code
 * (PASSWORD_TOO_WEAK) for a short, long or common one; the OpenAPI document
 * states the policy itself (8..256), for generated clients and forms.
 */
export const NewPasswordSchema = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: '8..256 characters, not a common password (else 400 PASSWORD_TOO_WEAK)',
  [DOCUMENTED_AS]: { minLength: 8, maxLength: 256 },
})

export const IsoDateTime = Type.String({ format: 'date-time', description: 'ISO 8601 UTC timestamp' })

/** src/auth/device-name.ts: for showing, not for parsing (the wording may change). */
export const DeviceName = Type.String({
  description:
    'A short name of the device, from its user agent, such as "Chrome on Linux" or "Safari on iPhone"; "Unknown device" without one',
})

/**
 * Text stored as text: any Unicode but NUL, which PostgreSQL's text type cannot
 * hold; refused on every database alike (400 VALIDATION_FAILED), never a 500.
 */
export const Text = (options: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ ...options, pattern: '^[^\\u0000]*$' })

export const Id = Text({ minLength: 1, maxLength: 64, description: 'Opaque id' })
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false })

export const UserSchema = Type.Object(
  {
    id: Type.String(),
    email: Type.String(),
    displayName: Nullable(Type.String()),
    emailVerified: Type.Boolean({ description: 'The address was proven by following a link mailed to it' }),
    createdAt: IsoDateTime,
    updatedAt: IsoDateTime,
  },
  { title: 'User' },
)

export const EmailSchema = Type.String({ format: 'email', minLength: 3, maxLength: 254 })
export const DisplayNameSchema = Text({ minLength: 1, maxLength: 100 })

type Security = Array<Record<string, string[]>>

/** Security requirement for routes that need an access token. */
export const ACCESS_SECURITY: Security = [{ bearerAuth: [] }, { cookieAuth: [] }]
export const PASSWORD_CONFIRMATION_SECURITY: Security = [
  { bearerAuth: [], passwordConfirmationHeader: [] },
  { cookieAuth: [], passwordConfirmationCookie: [] },
  { bearerAuth: [], passwordConfirmationCookie: [] },
  { cookieAuth: [], passwordConfirmationHeader: [] },
]

/** Limits for paginated lists: `?limit=` 1..100 (default 20) and an opaque `?cursor=`. */
export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
}

export const pageOf = <T extends TSchema>(item: T, title: string) =>
  Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) }, { title })

/**
 * preValidation hook for bodies with an `email`: trims it so that
 * " Alice@Example.com " validates as an email (it is lower-cased later).
 */
export async function trimEmailInput(request: { body: unknown }): Promise<void> {
  const body = request.body as { email?: unknown } | undefined
  if (body && typeof body === 'object' && typeof body.email === 'string') body.email = body.email.trim()
}

/** Base64url text (WebAuthn's binary fields as JSON carries them), bounded. */
const Base64Url = (maxLength: number, description?: string) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+$', ...(description ? { description } : {}) })

const WebAuthnCredentialFields = {
  /** Credential ids are at most 1023 bytes (WebAuthn Level 3). */
  id: Base64Url(1364, 'The credential id'),
  rawId: Base64Url(1364),
  type: Type.Literal('public-key'),
  authenticatorAttachment: Type.Optional(StringEnum(['platform', 'cross-platform'])),
  clientExtensionResults: Type.Object({}, { additionalProperties: true, maxProperties: 16 }),
}

/** What `navigator.credentials.create()` answers, as JSON (`PublicKeyCredential.toJSON()` or @simplewebauthn/browser). */
export const RegistrationResponseSchema = Type.Object(
  {
    ...WebAuthnCredentialFields,
    response: Type.Object({
      clientDataJSON: Base64Url(4096),
      attestationObject: Base64Url(32768),
      authenticatorData: Type.Optional(Base64Url(16384)),
      transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 })),
      publicKeyAlgorithm: Type.Optional(Type.Integer({ minimum: -65536, maximum: 65535 })),
      publicKey: Type.Optional(Base64Url(4096)),
    }),
  },
  { title: 'PasskeyRegistrationResponse', description: 'The authenticator\u2019s answer to the registration options' },
)

/** What `navigator.credentials.get()` answers, as JSON. */
export const AuthenticationResponseSchema = Type.Object(
  {
    ...WebAuthnCredentialFields,
    response: Type.Object({
      clientDataJSON: Base64Url(4096),
      authenticatorData: Base64Url(16384),
      // ML-DSA-87 (post-quantum, which Chromium's authenticators may pick) signs in 4,627 bytes.
      signature: Base64Url(8192),
      userHandle: Type.Optional(Base64Url(128)),
    }),
  },
  {
    title: 'PasskeyAuthenticationResponse',
    description: 'The authenticator\u2019s answer to the authentication options',
  },
)

/** A TOTP code as typed: six digits (spaces are the client's to strip). */
export const TotpCodeSchema = Type.String({
  pattern: '^[0-9]{6}$',
  description: 'Six digits from the authenticator app',
})
