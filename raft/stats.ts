/**
 * A tiny latency/size recorder for the driver's own numbers (exposed in /cluster/status as
 * `stats`): count, mean and max since start, and percentiles over the last 1,024 samples.
 * Pure: callers pass in the values they measured.
 */
export class Stat {
  private readonly ring = new Float64Array(1024);
  private n = 0;
  private sum = 0;
  private max = 0;

  add(v: number): void {
    this.ring[this.n % this.ring.length] = v;
    this.n++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  summary(digits = 3): { count: number; mean: number; p50: number; p99: number; max: number } {
    const k = Math.min(this.n, this.ring.length);
    const recent = Array.from(this.ring.subarray(0, k)).sort((a, b) => a - b);
    const pct = (p: number) => (k === 0 ? 0 : recent[Math.min(k - 1, Math.floor(p * k))]);
    const r = (x: number) => Number(x.toFixed(digits));
    return {
      count: this.n,
      mean: r(this.n === 0 ? 0 : this.sum / this.n),
      p50: r(pct(0.5)),
      p99: r(pct(0.99)),
      max: r(this.max),
    };
  }
}
