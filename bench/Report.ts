import { Duration, Effect } from "effect"
import { readFileSync } from "node:fs"
import { cpus, release } from "node:os"
import { runCommand } from "./Database.js"

/** What the numbers were measured on, and how they are printed. */

export interface Machine {
  readonly date: string
  readonly cpuModel: string
  readonly nproc: string
  readonly memory: string
  readonly kernel: string
  readonly loadAverageBefore: string
  readonly node: string
  readonly pgbench: string
}

const firstLine = (text: string) => text.trim().split("\n")[0] ?? ""

/** /proc/loadavg: other work on the machine shows here, and it skews every absolute number. */
export const loadAverage = () => {
  try {
    return readFileSync("/proc/loadavg", "utf8").trim()
  } catch {
    return "unknown"
  }
}

export const describeMachine = Effect.gen(function*() {
  const nproc = yield* runCommand("nproc", [], Duration.seconds(5))
  const free = yield* runCommand("free", ["-h"], Duration.seconds(5))
  const pgbench = yield* runCommand("pgbench", ["--version"], Duration.seconds(5))
  return {
    date: new Date().toISOString(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    nproc: nproc.stdout.trim(),
    memory: free.stdout.trimEnd(),
    kernel: release(),
    loadAverageBefore: loadAverage(),
    node: process.version,
    pgbench: firstLine(pgbench.stdout)
  } satisfies Machine
})

export const megabytes = (bytes: number | undefined) =>
  bytes === undefined || !Number.isFinite(bytes) ? "n/a" : `${(bytes / 1024 / 1024).toFixed(0)} MB`

export const fixed = (value: number, digits = 1) => Number.isFinite(value) ? value.toFixed(digits) : "n/a"

export const markdownTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${row.map((cell) => cell.replace(/\|/g, "\\|")).join(" | ")} |`)
  ].join("\n")
