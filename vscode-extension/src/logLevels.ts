// Pure parts of serverLog.ts: the level of each line the server writes to stderr, and what
// ghostcomplete.trace.server asks for.

export type Level = "trace" | "debug" | "info" | "warn" | "error";

const RECORD = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;

const LEVELS: Record<string, Level> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  ERROR: "error",
  CRITICAL: "error",
};

/** Splits the server's stderr into lines with their levels. Pure: one instance per stream. */
export class StderrLevels {
  /** Lines before any record (a crash at startup, Python's own messages) are errors. */
  private current: Level = "error";

  /** The level and the text to show (the channel adds its own timestamp). */
  line(text: string): { level: Level; text: string } {
    const record = RECORD.exec(text);
    if (record !== null) {
      this.current = LEVELS[record[1] as string] ?? "error";
      return { level: this.current, text: record[2] as string };
    }
    if (text.startsWith("Traceback (most recent call last)")) {
      this.current = "error"; // an uncaught exception, not part of the record before it
    }
    return { level: this.current, text };
  }
}

/** Whether ghostcomplete.trace.server asks for a trace. */
export function traceRequested(setting: unknown): boolean {
  return setting === "messages" || setting === "verbose";
}
