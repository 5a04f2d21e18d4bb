export function sourceHash(): string
export function writeStamp(): void
export function isFresh(): boolean
