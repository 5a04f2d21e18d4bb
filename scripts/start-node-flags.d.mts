/** The node flags of `npm start` (package.json's start script). */
export function startNodeFlags(): string[]
