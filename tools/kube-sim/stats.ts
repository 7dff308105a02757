/** Counters for tests and benchmarks: requests by verb and resource, Jobs and pods, concurrency. */

export interface KubeSimStats {
  /** Keyed "verb resource", with the API's verbs: "create jobs", "list pods", "watch jobs", "get pods/log". */
  requests: Record<string, number>;
  jobsCreated: number;
  podsCreated: number;
  /** Jobs that exist and have not finished (no Complete or Failed condition). */
  activeJobs: number;
  maxActiveJobs: number;
  openWatches: number;
  runningProcesses: number;
}

export class Stats {
  private requests = new Map<string, number>();
  jobsCreated = 0;
  podsCreated = 0;
  activeJobs = 0;
  maxActiveJobs = 0;

  request(verb: string, resource: string): void {
    const key = `${verb} ${resource}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  jobStarted(): void {
    this.jobsCreated++;
    this.activeJobs++;
    this.maxActiveJobs = Math.max(this.maxActiveJobs, this.activeJobs);
  }

  jobEnded(): void {
    this.activeJobs--;
  }

  snapshot(openWatches: number, runningProcesses: number): KubeSimStats {
    return {
      requests: Object.fromEntries(this.requests),
      jobsCreated: this.jobsCreated,
      podsCreated: this.podsCreated,
      activeJobs: this.activeJobs,
      maxActiveJobs: this.maxActiveJobs,
      openWatches,
      runningProcesses,
    };
  }

  /** Zeroes the counters; the active count stays true, and the maximum restarts from it. */
  reset(): void {
    this.requests = new Map();
    this.jobsCreated = 0;
    this.podsCreated = 0;
    this.maxActiveJobs = this.activeJobs;
  }
}
