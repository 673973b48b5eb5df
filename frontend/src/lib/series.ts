// SeriesBuffer: a time-ordered columnar buffer with a hard cap, used for every live
// series on the page. Times are kept sorted (items from two routes and from a history
// replay arrive slightly out of order), the oldest samples fall off when the cap or the
// retention is reached, and a window is a pair of indexes whose column slices are
// zero-copy subarrays that uPlot can draw directly.

export class SeriesBuffer {
  /** times in seconds (uPlot's time unit), sorted ascending in [start, end) */
  t: Float64Array;
  cols: Float32Array[];
  private start = 0;
  private end = 0;

  /**
   * @param ncols    number of value columns
   * @param cap      hard cap on retained samples
   * @param retainS  samples older than newest - retainS are dropped
   * @param initial  initial allocation (grows by doubling up to 2 × cap)
   */
  constructor(
    readonly ncols: number,
    readonly cap: number,
    readonly retainS: number,
    private readonly initial = 1024,
  ) {
    const n = Math.max(4, Math.min(initial, 2 * cap));
    this.t = new Float64Array(n);
    this.cols = Array.from({ length: ncols }, () => new Float32Array(n));
  }

  get length(): number {
    return this.end - this.start;
  }

  /** allocated samples (memory bound check) */
  get allocated(): number {
    return this.t.length;
  }

  get newest(): number {
    return this.end > this.start ? this.t[this.end - 1] : NaN;
  }

  get oldest(): number {
    return this.end > this.start ? this.t[this.start] : NaN;
  }

  /**
   * insert adds a sample at time t (seconds). Returns false if it was dropped because it
   * is older than everything retained while the buffer is full or older than retention.
   */
  insert(t: number, vals: ArrayLike<number>): boolean {
    if (!Number.isFinite(t)) return false;
    const n = this.length;
    if (n > 0) {
      const newest = this.t[this.end - 1];
      if (t < newest - this.retainS) return false;
      if (n >= this.cap && t < this.t[this.start]) return false;
    }
    if (this.end === this.t.length) this.makeRoom();
    let pos = this.end;
    if (n > 0 && t < this.t[this.end - 1]) {
      pos = this.upperBound(t);
      this.t.copyWithin(pos + 1, pos, this.end);
      for (const c of this.cols) c.copyWithin(pos + 1, pos, this.end);
    }
    this.t[pos] = t;
    for (let i = 0; i < this.ncols; i++) this.cols[i][pos] = vals[i] ?? NaN;
    this.end++;
    // enforce the cap and the retention (amortized O(1): start only moves forward)
    if (this.end - this.start > this.cap) this.start = this.end - this.cap;
    const floor = this.t[this.end - 1] - this.retainS;
    while (this.start < this.end && this.t[this.start] < floor) this.start++;
    return true;
  }

  /**
   * dropOldest removes the n oldest samples. When that leaves the buffer mostly empty
   * its arrays are reallocated smaller, so memory follows what is held.
   */
  dropOldest(n: number): void {
    this.start = Math.min(this.end, this.start + Math.max(0, Math.floor(n)));
    const len = this.length;
    if (this.t.length > 4 * Math.max(len, this.initial)) this.realloc(Math.max(2 * len, this.initial));
  }

  clear(): void {
    this.start = 0;
    this.end = 0;
  }

  /** lowerBound is the first index in [start, end) with t[i] >= x (end if none). */
  lowerBound(x: number): number {
    let lo = this.start;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.t[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** upperBound is the first index in [start, end) with t[i] > x (end if none). */
  upperBound(x: number): number {
    let lo = this.start;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.t[mid] <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** range returns [from, to) indexes of samples with fromT <= t <= toT. */
  range(fromT: number, toT: number): [number, number] {
    return [this.lowerBound(fromT), this.upperBound(toT)];
  }

  /** bounds is [start, end) of everything retained. */
  bounds(): [number, number] {
    return [this.start, this.end];
  }

  times(from: number, to: number): Float64Array {
    return this.t.subarray(from, to);
  }

  col(i: number, from: number, to: number): Float32Array {
    return this.cols[i].subarray(from, to);
  }

  /** at returns the value of column c at absolute index i. */
  at(c: number, i: number): number {
    return this.cols[c][i];
  }

  private makeRoom(): void {
    const n = this.length;
    const len = this.t.length;
    // Compact in place when at most half is used; otherwise grow (up to 2 × cap, where
    // the cap guarantees at most half is used, so compaction always frees room).
    if (n <= len / 2 || len >= 2 * this.cap) {
      this.t.copyWithin(0, this.start, this.end);
      for (const c of this.cols) c.copyWithin(0, this.start, this.end);
    } else {
      this.realloc(Math.min(2 * this.cap, len * 2));
      return;
    }
    this.start = 0;
    this.end = n;
  }

  /** realloc moves what is held to new arrays of size, which must hold it. */
  private realloc(size: number): void {
    const n = this.length;
    const t = new Float64Array(size);
    t.set(this.t.subarray(this.start, this.end));
    this.t = t;
    this.cols = this.cols.map((c) => {
      const d = new Float32Array(size);
      d.set(c.subarray(this.start, this.end));
      return d;
    });
    this.start = 0;
    this.end = n;
  }
}
