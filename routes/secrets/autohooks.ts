// Every route in this folder needs an access token.
export { protectRoutes as default } from '../../plugins/auth.js'
