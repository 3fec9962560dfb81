// Which region to use: the nearest healthy one (lowest round trip among those whose identity
// pool answers), unless the installer picks one.
import { probe, type Caller } from "./aws";
import type { RegionConfig } from "./config";

export const PROBE_TIMEOUT_MS = 4_000;

export interface Health {
  region: string;
  healthy: boolean;
  rttMs: number | null;
}

export type Prober = (region: RegionConfig) => Promise<number>;

export async function checkRegions(regions: RegionConfig[], prober: Prober): Promise<Health[]> {
  return Promise.all(regions.map(async (region): Promise<Health> => {
    try {
      return { region: region.region, healthy: true, rttMs: Math.round(await prober(region)) };
    } catch {
      return { region: region.region, healthy: false, rttMs: null };
    }
  }));
}

export function nearestHealthy(health: Health[]): string | null {
  const healthy = health.filter((h) => h.healthy).sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
  return healthy.length ? healthy[0].region : null;
}

export function defaultProber(caller?: Partial<Caller>): Prober {
  return (region) => probe(region, { fetch: caller?.fetch ?? ((...a) => fetch(...a)), timeoutMs: caller?.timeoutMs ?? PROBE_TIMEOUT_MS });
}
