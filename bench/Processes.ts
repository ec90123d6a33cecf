import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Duration, Effect, Ref, Schedule } from "effect"

/**
 * The application as it runs in production: `node --import tsx src/main.ts <command>` in child
 * processes, on loopback only. Every child is a scoped resource, SIGKILLed when the benchmark's scope
 * closes however it ends, and its peak resident memory is read from /proc while it lives.
 */

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..")

/** Only these pass from the benchmark's environment: a developer's DATABASE_URL or REDIS_URL must not leak in. */
const inheritedVariables = ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "NODE_EXTRA_CA_CERTS"]

// Output kept per child: enough for a stack trace, bounded however chatty the child is (info logs per order).
const outputCharsMax = 20_000

/** A TCP port that was free a moment ago on 127.0.0.1. */
export const freePort = Effect.async<number, Error>((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(error)))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(port > 0 ? Effect.succeed(port) : Effect.fail(new Error("no free port"))))
  })
})

export interface MemorySample {
  readonly rssBytes: number
  /** The kernel's high-water mark of the resident set since the process started. */
  readonly rssPeakBytes: number
}

/** VmRSS and VmHWM of a live process; none once it is gone (or off Linux). */
export const readMemory = (pid: number): MemorySample | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kilobytes = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN)
    const rss = kilobytes("VmRSS")
    const peak = kilobytes("VmHWM")
    return Number.isFinite(rss) && Number.isFinite(peak) ? { rssBytes: rss * 1024, rssPeakBytes: peak * 1024 } : undefined
  } catch {
    return undefined
  }
}

export interface AppProcess {
  /** The role in the benchmark ("server", "worker-1"); the key of its memory figures. */
  readonly name: string
  readonly pid: number
  readonly baseUrl: string
  readonly output: () => string
  readonly isAlive: () => boolean
  /** Largest VmHWM seen so far (sampled, and read once more just before the process is stopped). */
  readonly rssPeakBytes: Effect.Effect<number>
  /** Resolves with "exit <code>" or the signal's name. */
  readonly exited: Effect.Effect<string>
  /** Sends `signal`, waits up to `grace`, then SIGKILLs. Records the peak memory first. */
  readonly stop: (signal: NodeJS.Signals, grace: Duration.DurationInput) => Effect.Effect<string>
  /** Waits until the output contains `text`; fails if the process exits first or the time is up. */
  readonly waitForOutput: (text: string, timeout: Duration.DurationInput) => Effect.Effect<void, Error>
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

/** Starts `src/main.ts <command>`; the child is SIGKILLed (if still running) when the scope closes. */
export const startApp = (options: {
  readonly name: string
  readonly command: string
  readonly port: number
  readonly env: Record<string, string>
}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const env: Record<string, string> = {}
      for (const key of inheritedVariables) {
        const value = process.env[key]
        if (value !== undefined) env[key] = value
      }
      Object.assign(env, { PORT: String(options.port), HOST: "127.0.0.1" }, options.env)
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", options.command], {
        cwd: projectRoot,
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      if (child.pid === undefined) return yield* Effect.fail(new Error(`${options.name} could not be started`))
      const pid = child.pid
      let output = ""
      const onData = (chunk: Buffer) => (output = (output + chunk.toString("utf8")).slice(-outputCharsMax))
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      const exitedPromise = new Promise<string>((resolve) =>
        child.once("exit", (code, signal) => resolve(signal ?? `exit ${code}`))
      )
      const exited = Effect.promise(() => exitedPromise)
      const peak = yield* Ref.make(0)
      const samplePeak = Effect.suspend(() => {
        const sample = isRunning(child) ? readMemory(pid) : undefined
        return sample === undefined ? Effect.void : Ref.update(peak, (current) => Math.max(current, sample.rssPeakBytes))
      })
      // VmHWM is the kernel's own peak; sampling only keeps the last value seen before the process is gone.
      // Interruptible explicitly: a fiber forked here would inherit the acquire's uninterruptibility and
      // keep its scope from ever closing.
      yield* Effect.forkScoped(Effect.interruptible(Effect.repeat(samplePeak, Schedule.spaced(Duration.millis(250)))))

      const stop = (signal: NodeJS.Signals, grace: Duration.DurationInput) =>
        Effect.gen(function*() {
          yield* samplePeak
          if (isRunning(child)) child.kill(signal)
          return yield* exited.pipe(
            Effect.timeout(grace),
            Effect.catchTag("TimeoutException", () =>
              Effect.zipRight(Effect.sync(() => child.kill("SIGKILL")), exited))
          )
        })

      const waitForOutput = (text: string, timeout: Duration.DurationInput) =>
        Effect.raceFirst(
          Effect.repeat(Effect.sync(() => output.includes(text)), {
            schedule: Schedule.spaced(Duration.millis(100)),
            until: (found) => found
          }).pipe(Effect.asVoid),
          Effect.flatMap(exited, (how) => Effect.fail(new Error(`${options.name} exited (${how}) before "${text}":\n${output}`)))
        ).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new Error(`${options.name} did not print "${text}" within ${Duration.format(timeout)}:\n${output}`)
          })
        )

      return {
        name: options.name,
        pid,
        baseUrl: `http://127.0.0.1:${options.port}`,
        output: () => output,
        isAlive: () => isRunning(child),
        rssPeakBytes: Effect.zipRight(samplePeak, Ref.get(peak)),
        exited,
        stop,
        waitForOutput
      } satisfies AppProcess
    }),
    (app) => Effect.asVoid(app.stop("SIGKILL", Duration.seconds(10)))
  )

/** Polls `/health` until it answers 200; fails with the process output if it exits or the time is up. */
export const waitForHealth = (app: AppProcess, timeout: Duration.DurationInput) =>
  Effect.tryPromise({
    try: (signal) => fetch(`${app.baseUrl}/health`, { signal: AbortSignal.any([signal, AbortSignal.timeout(1_000)]) }),
    catch: (cause) => cause
  }).pipe(
    Effect.map((response) => response.status === 200),
    Effect.catchAll(() => Effect.succeed(false)),
    Effect.flatMap((healthy) =>
      healthy || app.isAlive() ? Effect.succeed(healthy) : Effect.fail(new Error(`${app.name} exited:\n${app.output()}`))
    ),
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(200)), until: (healthy) => healthy }),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new Error(`${app.name} was not healthy within ${Duration.format(timeout)}:\n${app.output()}`)
    }),
    Effect.asVoid
  )

/** Runs a one-shot command (`seed`, `migrate`) to completion; a non-zero exit is an error. */
export const runAppCommand = (options: {
  readonly name: string
  readonly command: string
  readonly port: number
  readonly env: Record<string, string>
  readonly timeout: Duration.DurationInput
}) =>
  Effect.scoped(Effect.gen(function*() {
    const app = yield* startApp(options)
    const how = yield* app.exited.pipe(
      Effect.timeoutFail({
        duration: options.timeout,
        onTimeout: () => new Error(`${options.name} did not finish within ${Duration.format(options.timeout)}:\n${app.output()}`)
      })
    )
    if (how !== "exit 0") return yield* Effect.fail(new Error(`${options.name} ended with ${how}:\n${app.output()}`))
    return app.output()
  }))
