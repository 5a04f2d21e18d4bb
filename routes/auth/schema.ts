import { Type } from '@sinclair/typebox'
import {
  DisplayNameSchema,
  EmailSchema,
  errorResponses,
  IsoDateTime,
  NewPasswordSchema,
  StringEnum,
  UserSchema,
} from '../../src/schemas.js'

// A password given to sign in is bounded only against abuse; the 8..256 policy
// of new ones (and the common-password list) is NewPasswordSchema's.
const GivenPassword = Type.String({ minLength: 1, maxLength: 1024 })

const SignedInSchema = Type.Object(
  {
    user: UserSchema,
    accessToken: Type.String({ description: 'JWT access token (also set as the access_token cookie)' }),
    accessTokenExpiresAt: IsoDateTime,
  },
  { title: 'SignedIn', description: 'Signed in: the user and an access token; the session cookies are set' },
)

export const MfaRequiredSchema = Type.Object(
  {
    mfaRequired: Type.Literal(true),
    mfaToken: Type.String({
      description:
        'For POST /auth/mfa/verify: single use, for 5 minutes and at most 5 wrong codes; not an access token',
    }),
    factors: Type.Array(Type.Unsafe<'totp' | 'recovery_code'>({ type: 'string', enum: ['totp', 'recovery_code'] }), {
      description:
        'What POST /auth/mfa/verify accepts: `code` (totp) or `recoveryCode` (recovery_code, while any are left)',
    }),
  },
  {
    title: 'MfaRequired',
    description: 'The first factor was right and the account has a second one: no session yet, no cookies set',
  },
)

/** What a login answers: a session, or (with TOTP on) the request for a second factor. */
export const LoginResultSchema = Type.Union([SignedInSchema, MfaRequiredSchema], {
  description: 'Signed in, or `mfaRequired` when the account has TOTP on',
})

const setsCookies = 'Sets the `access_token` and `refresh_token` cookies (HttpOnly, signed).'

export { SignedInSchema }

export const SignupSchema = {
  tags: ['auth'],
  summary: 'Create an account and sign in',
  description: `Email is trimmed and lower-cased. ${setsCookies} Limited to AUTH_RATE_LIMIT_MAX sign-ups per IP per 15 minutes.`,
  body: Type.Object(
    { email: EmailSchema, password: NewPasswordSchema, displayName: Type.Optional(DisplayNameSchema) },
    { additionalProperties: false },
  ),
  response: { 201: SignedInSchema, ...errorResponses(400, 403, 409, 413, 415) },
}

export const LoginSchema = {
  tags: ['auth'],
  summary: 'Sign in with email and password',
  description: `Wrong password and unknown email both answer 401 INVALID_CREDENTIALS, in the same time. After AUTH_RATE_LIMIT_MAX failures for one email within 15 minutes, every attempt answers 429 until the window passes. ${setsCookies} With TOTP on, the right password answers \`{ mfaRequired: true, mfaToken, factors }\` instead, sets no cookie, and POST /auth/mfa/verify finishes the login.`,
  body: Type.Object({ email: EmailSchema, password: GivenPassword }, { additionalProperties: false }),
  response: { 200: LoginResultSchema, ...errorResponses(400, 401, 403, 413, 415) },
}

export const RefreshSchema = {
  tags: ['auth'],
  summary: 'Rotate the refresh token and get a new access token',
  description:
    'Reads the `refresh_token` cookie, marks it used and sets its successor (and a new `access_token`). Presenting a used token again within REFRESH_REUSE_GRACE returns the same successor; later, the whole session is revoked (REFRESH_TOKEN_REUSED). Failures clear the auth cookies.',
  security: [{ refreshCookie: [] }] as Array<Record<string, string[]>>,
  response: {
    200: Type.Object(
      { accessToken: Type.String(), accessTokenExpiresAt: IsoDateTime },
      { title: 'Refreshed', description: 'A new access token; the cookies are rotated' },
    ),
    ...errorResponses(401, 403),
  },
}

export const LogoutSchema = {
  tags: ['auth'],
  summary: 'Log out this session, the others, or all',
  description:
    '`current` (default) always answers 204 and clears the auth cookies. `others` keeps this session and revokes the rest; `all` revokes every session and clears the cookies. `others` and `all` need a valid access token or refresh cookie.',
  security: [{ bearerAuth: [] }, { cookieAuth: [] }, { refreshCookie: [] }, {}] as Array<Record<string, string[]>>,
  // The route reads no body as `{}` (its preValidation): the OpenAPI document says the body is optional.
  'x-body-optional': true,
  body: Type.Object(
    {
      scope: Type.Optional(StringEnum(['current', 'others', 'all'], { default: 'current' })),
    },
    { additionalProperties: false, description: 'Optional: an absent body means scope current' },
  ),
  response: { 204: Type.Null({ description: 'Logged out' }), ...errorResponses(400, 401, 403, 415) },
}
