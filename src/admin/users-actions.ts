// The actions of `latchkey users`, apart from their code: the CLI checks its
// arguments against them before it loads anything else.
export const USERS_ACTIONS = ['list', 'show', 'revoke-sessions', 'reset-totp', 'disable', 'enable', 'delete'] as const
export type UsersAction = (typeof USERS_ACTIONS)[number]
