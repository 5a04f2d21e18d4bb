// Schemas of the mailed-link routes (email verification, email change, sign-in link).
import { Type } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import { UserSchema } from '../../../src/schemas.js'

/** The body of every link confirmation: the token the account page read from the link's fragment. */
export const MailTokenBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 512, description: 'The token from the link (its URL fragment)' }) },
  { additionalProperties: false },
)

export const UserEnvelope = Type.Object({ user: UserSchema }, { title: 'UserEnvelope' })

/** The 202 of a mail request: no body at all (the same for every address). */
export const Accepted = Type.Null({
  description: 'Accepted; no body. A mail goes out when there is someone to write to',
})

export function accepted(reply: FastifyReply): FastifyReply {
  // The untyped reply: a 202 has no body, not the JSON `null` its schema would serialize.
  return reply.code(202).send()
}
