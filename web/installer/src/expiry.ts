// The claim's countdown: AWS IoT's claims live five minutes.

export function secondsLeft(expiresAt: number, now: number): number {
  return Math.max(0, Math.floor((expiresAt - now) / 1000));
}

export function formatLeft(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
}

// Screen readers hear the time left once a minute and in the last ten seconds, not every second.
export function announce(seconds: number): string | null {
  if (seconds === 0) return "The claim has expired.";
  if (seconds <= 10 || seconds % 60 === 0) {
    const minutes = Math.floor(seconds / 60);
    return minutes > 0 ? `${minutes} minute${minutes > 1 ? "s" : ""} left.` : `${seconds} seconds left.`;
  }
  return null;
}
