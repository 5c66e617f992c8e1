/**
 * Evidence and browser signals read from request headers, without keeping personal data: the
 * country comes from a header the operator's proxy sets (never from the address itself), the
 * browser only as its family name.
 */
export interface ConsentEvidence {
  country?: string | null;
  uaFamily?: string | null;
  bannerVersion?: string | null;
}

export interface Signals {
  gpc: boolean;
  dnt: boolean;
}

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `Sec-GPC: 1` and `DNT: 1` exactly: the GPC specification defines "1" as the only value that
 * expresses the preference, so "true", "yes" or " 1" do not count.
 */
export function signalsFrom(headers: Headers): Signals {
  return { gpc: header(headers, 'sec-gpc') === '1', dnt: header(headers, 'dnt') === '1' };
}

/** The browser family of a user agent: enough to show how a choice was made, too coarse to single anyone out. */
export function userAgentFamily(userAgent: string | undefined): string | null {
  if (!userAgent) return null;
  // Order matters: Edge and Opera announce Chrome too, Chrome announces Safari.
  if (/\bEdg(e|A|iOS)?\//.test(userAgent)) return 'Edge';
  if (/\b(OPR|Opera)\//.test(userAgent)) return 'Opera';
  if (/\bFirefox\/|\bFxiOS\//.test(userAgent)) return 'Firefox';
  if (/\bSamsungBrowser\//.test(userAgent)) return 'Samsung Internet';
  if (/\bChrome\/|\bCriOS\/|\bChromium\//.test(userAgent)) return 'Chrome';
  if (/\bSafari\//.test(userAgent) && /\bVersion\//.test(userAgent)) return 'Safari';
  return 'other';
}

/**
 * Evidence of one request. `countryHeader` is the header the operator's proxy fills with the
 * client's country (PLEDGE_COUNTRY_HEADER); without it no country is recorded.
 */
export function evidenceFrom(headers: Headers, countryHeader: string | undefined, bannerVersion?: string): ConsentEvidence {
  const rawCountry = countryHeader ? header(headers, countryHeader.toLowerCase())?.trim().toUpperCase() : undefined;
  return {
    country: rawCountry && /^[A-Z]{2}$/.test(rawCountry) ? rawCountry : null,
    uaFamily: userAgentFamily(header(headers, 'user-agent')),
    bannerVersion: bannerVersion ?? null,
  };
}
