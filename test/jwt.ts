// Hand-made JWTs for attack tests: any header, any claims, any key.
import { createHmac } from 'node:crypto'

const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

export function forgeJwt(
  claims: Record<string, unknown>,
  key: Buffer | string | null,
  header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' },
): string {
  const unsigned = `${encode(header)}.${encode(claims)}`
  if (key === null) return `${unsigned}.`
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`
}

export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [header = '', claims = ''] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(claims, 'base64url').toString()),
  }
}
