import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * Real `jivapay` OS processes for the start-up tests: `node --import tsx src/main.ts <command>` with a
 * chosen environment, their output captured, and bounded waits on everything.
 */

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/**
 * Only these pass from the test runner's environment to a child: a developer's DATABASE_URL, REDIS_URL,
 * S3_* or ADMIN_* must never leak into a test that means "unset".
 */
const INHERITED_VARIABLES = ["PATH", "HOME", "TMPDIR", "TMP", "TEMP", "LANG", "LC_ALL", "SYSTEMROOT", "NODE_EXTRA_CA_CERTS"]

/** A TCP port that was free a moment ago on 127.0.0.1. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export interface JivaPayProcess {
  readonly child: ChildProcess
  readonly port: number
  readonly baseUrl: string
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>
}

export const spawnJivaPay = (options: {
  readonly command?: string
  readonly port: number
  readonly env: Record<string, string | undefined>
}): JivaPayProcess => {
  const env: Record<string, string> = {}
  for (const key of INHERITED_VARIABLES) {
    const value = process.env[key]
    if (value !== undefined) env[key] = value
  }
  for (const [key, value] of Object.entries({ PORT: String(options.port), HOST: "127.0.0.1", ...options.env })) {
    if (value !== undefined) env[key] = value
  }
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", options.command ?? "start"], {
    cwd: projectRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (chunk) => (output += String(chunk)))
  child.stderr!.on("data", (chunk) => (output += String(chunk)))
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
  })
  return { child, port: options.port, baseUrl: `http://127.0.0.1:${options.port}`, output: () => output, exited }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `/health` until it answers 200; fails with the process output when it exits or the time is up. */
export const waitForHealth = async (proc: JivaPayProcess, timeoutMs = 150_000) => {
  const deadline = Date.now() + timeoutMs
  let exitedWith: number | string | undefined
  void proc.exited.then((code) => (exitedWith = code))
  while (Date.now() < deadline) {
    if (exitedWith !== undefined) {
      throw new Error(`jivapay on port ${proc.port} exited with ${exitedWith} before it was healthy:\n${proc.output()}`)
    }
    try {
      const response = await fetch(`${proc.baseUrl}/health`, { signal: AbortSignal.timeout(1_000) })
      if (response.status === 200) return
    } catch {
      // Not listening yet.
    }
    await sleep(250)
  }
  throw new Error(`jivapay on port ${proc.port} was not healthy within ${timeoutMs} ms:\n${proc.output()}`)
}

/** Sends `signal` and waits for the exit; SIGKILLs after `timeoutMs`. Resolves with the exit code or signal. */
export const stopProcess = async (proc: JivaPayProcess, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000) => {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited
  proc.child.kill(signal)
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs)
  try {
    return await proc.exited
  } finally {
    clearTimeout(timer)
  }
}

/** For `finally` blocks: no child outlives its test. */
export const killAll = async (processes: ReadonlyArray<JivaPayProcess>) => {
  await Promise.all(processes.map((proc) => stopProcess(proc, "SIGKILL", 5_000)))
}

/** A small JSON client against one process. */
export const callJson = async (
  proc: JivaPayProcess,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly token?: string } = {}
) => {
  const headers: Record<string, string> = {}
  if (options.body !== undefined) headers["content-type"] = "application/json"
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  const response = await fetch(`${proc.baseUrl}${path}`, {
    method,
    headers,
    signal: AbortSignal.timeout(15_000),
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
  })
  const text = await response.text()
  let body: any = undefined
  try {
    body = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    body = undefined
  }
  return { status: response.status, body, text }
}
