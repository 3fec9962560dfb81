// The hand-over file: everything a device needs to provision itself with the claim, in one
// JSON file the installer downloads or sends to the device's setup address.
import amazonRootCas from "../../../lambdas/cvm_registration/amazon_root_cas.pem?raw";
import type { ProvisioningClaim } from "./aws";
import type { RegionConfig, SiteConfig } from "./config";

export const FORMAT = "iot-multi-region/claim-handover";

export interface Handover {
  format: typeof FORMAT;
  version: 1;
  region: string;
  endpoint: string; // where to provision: the claim region's AWS IoT endpoint (claims are regional)
  port: number;
  deviceEndpoint: string; // where to connect once provisioned: the device domain (latency-routed)
  templateName: string;
  clientId: string | null; // <prefix><serial> when the serial is known; the hook requires it
  clientIdPrefix: string;
  serial: string | null;
  certificateId: string;
  certificatePem: string;
  privateKey: string;
  rootCaPem: string; // Amazon's root CAs: the device domain's server certificate chains to them
  expiresAt: string; // ISO 8601, UTC
}

export function handover(config: SiteConfig, region: RegionConfig, claim: ProvisioningClaim,
                         serial: string | null): Handover {
  return {
    format: FORMAT,
    version: 1,
    region: region.region,
    endpoint: region.provisioningEndpoint,
    port: config.devicePort,
    deviceEndpoint: config.deviceEndpoint,
    templateName: region.templateName,
    clientId: serial ? `${config.claimClientIdPrefix}${serial}` : null,
    clientIdPrefix: config.claimClientIdPrefix,
    serial,
    certificateId: claim.certificateId,
    certificatePem: claim.certificatePem,
    privateKey: claim.privateKey,
    rootCaPem: amazonRootCas,
    expiresAt: new Date(claim.expiresAt).toISOString(),
  };
}

export function fileName(bundle: Handover): string {
  const who = bundle.serial ?? bundle.certificateId.slice(0, 12);
  return `claim-${who}-${bundle.region}.json`;
}

export function serialise(bundle: Handover): string {
  return `${JSON.stringify(bundle, null, 2)}\n`;
}
