// "Send to device": POST the hand-over file to the device's address on its setup network (the
// SoftAP pattern). The page is https, so the address must be https too (or loopback, for a
// USB bridge on this computer); the device answers CORS and Private Network Access preflights.
import { AwsError } from "./aws";

export const DEVICE_TIMEOUT_MS = 8_000;

export interface DeviceAnswer {
  status: number;
  text: string;
}

export async function sendToDevice(address: string, body: string, fetcher: typeof fetch = fetch,
                                   timeoutMs = DEVICE_TIMEOUT_MS): Promise<DeviceAnswer> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response: Response;
  try {
    response = await fetcher(address, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: controller.signal,
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    throw new AwsError(controller.signal.aborted ? "Timeout" : "DeviceUnreachable",
      controller.signal.aborted ? "no answer" : "not reachable", 0, "device");
  } finally {
    clearTimeout(timer);
  }
  const text = (await response.text()).slice(0, 300);
  if (!response.ok) {
    throw new AwsError("DeviceRefused", `HTTP ${response.status}${text ? `: ${text}` : ""}`, response.status, "device");
  }
  return { status: response.status, text };
}
