// The signed-in user's secret messages, encrypted at rest. Another user's secret
// answers 404, like a missing one; a ciphertext that fails authentication is a
// logged 500 without details, never garbage.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { createSecret, deleteSecret, findSecret, pageSecrets, updateSecret } from '../../src/data/secrets.js'
import { notFound } from '../../src/errors.js'
import { errorResponses, IdParams } from '../../src/schemas.js'
import { CreateSecretBody, SecretEnvelope, SecretPage, SecretPageQuery, UpdateSecretBody } from './schema.js'

const secretRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, keys, clock } = fastify

  fastify.get(
    '/',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Your secrets, newest first',
        description: 'Pass `nextCursor` back as `cursor` for the next page; it is `null` on the last page.',
        querystring: SecretPageQuery,
        response: { 200: SecretPage, ...errorResponses(400, 500) },
      },
    },
    async (request) => pageSecrets(db, keys, request.auth.userId, request.query),
  )

  fastify.post(
    '/',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Store a secret message',
        description: 'Title and message are encrypted together (AES-256-GCM) before they reach the database.',
        body: CreateSecretBody,
        response: { 201: SecretEnvelope, ...errorResponses(400, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const secret = await createSecret(db, keys, request.auth.userId, request.body, clock.now())
      return reply.code(201).send({ secret })
    },
  )

  fastify.get(
    '/:id',
    {
      schema: {
        tags: ['secrets'],
        summary: 'One of your secrets, decrypted',
        params: IdParams,
        response: { 200: SecretEnvelope, ...errorResponses(400, 404, 500) },
      },
    },
    async (request) => {
      const secret = await findSecret(db, keys, request.auth.userId, request.params.id)
      if (!secret) throw notFound('Secret')
      return { secret }
    },
  )

  fastify.patch(
    '/:id',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Change a secret',
        description: 'Only the fields given change; the secret is encrypted again under a fresh nonce.',
        params: IdParams,
        body: UpdateSecretBody,
        response: { 200: SecretEnvelope, ...errorResponses(400, 403, 404, 413, 415, 500) },
      },
    },
    async (request) => {
      const secret = await updateSecret(db, keys, request.auth.userId, request.params.id, request.body, clock.now())
      if (!secret) throw notFound('Secret')
      return { secret }
    },
  )

  fastify.delete(
    '/:id',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Delete a secret',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(400, 403, 404) },
      },
    },
    async (request, reply) => {
      if (!(await deleteSecret(db, request.auth.userId, request.params.id))) throw notFound('Secret')
      return reply.code(204).send(null)
    },
  )
}

export default secretRoutes
