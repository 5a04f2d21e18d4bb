// A short name for the device behind a session or a security event ("Chrome on
// Linux", "Safari on iPhone"), enough for a person to tell their own devices
// apart. bowser (MIT) reads the user agent; a client it does not know is named
// by the first word of its user agent ("curl", "okhttp").
import Bowser from 'bowser'

export const UNKNOWN_DEVICE = 'Unknown device'

export function deviceName(userAgent: string | null): string {
  if (!userAgent?.trim()) return UNKNOWN_DEVICE
  const { browser, os, platform } = Bowser.parse(userAgent)
  const client = browser.name || userAgent.trim().split(/[\s/]/)[0]?.slice(0, 40) || 'Unknown browser'
  // On an iPhone or iPad the device says more than "iOS".
  const system = platform.vendor === 'Apple' && platform.model && os.name === 'iOS' ? platform.model : os.name
  return system ? `${client} on ${system}` : client
}
