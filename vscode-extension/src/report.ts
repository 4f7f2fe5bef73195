// Show Acceptance Stats: the `ghostcomplete stats --html` report, run with the server's own
// command. Pure helpers; extension code runs the process and opens the webview.

import type { ServerCommand } from "./serverCommand";

/** The argv that writes the HTML report to `file` (same database as the server). */
export function statsCommand(
  server: ServerCommand,
  file: string,
  telemetryPath: unknown,
): { command: string; args: string[] } {
  const args = [...server.args, "stats", "--html", file];
  if (typeof telemetryPath === "string" && telemetryPath !== "") {
    args.push("--db", telemetryPath);
  }
  return { command: server.command, args };
}

/**
 * The report as a webview page: scripts and remote loads are refused (the report is
 * self-contained), and it keeps its own light colors whatever the editor theme.
 */
export function reportForWebview(html: string): string {
  const head =
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:;">` +
    "<style>html,body{background:#fff;color:#222}</style>";
  const at = html.search(/<head[^>]*>/i);
  if (at < 0) {
    return `<!doctype html><html><head>${head}</head><body>${html}</body></html>`;
  }
  const end = html.indexOf(">", at) + 1;
  return html.slice(0, end) + head + html.slice(end);
}

function counts(total: Record<string, unknown>): string[] {
  const parts: string[] = [];
  for (const key of ["offered", "shown", "accepted", "partiallyAccepted", "rejected"]) {
    if (typeof total[key] === "number") {
      parts.push(`${key} ${total[key] as number}`);
    }
  }
  const rate = total["acceptanceRate"];
  if (typeof rate === "number") {
    parts.push(`acceptance ${(rate * 100).toFixed(1)} %`);
  }
  return parts;
}

/**
 * A one-line summary of the ghostcomplete.stats answer (this server's session counts, plus
 * the database's totals under "recorded"): the fallback when the HTML report cannot be made.
 */
export function statsSummary(raw: unknown): string {
  if (typeof raw !== "object" || raw === null) {
    return "no figures from the server";
  }
  const answer = raw as Record<string, unknown>;
  const session = counts(answer);
  const recorded = answer["recorded"];
  const all = typeof recorded === "object" && recorded !== null ? counts(recorded as Record<string, unknown>) : [];
  const lines: string[] = [];
  if (session.length > 0) {
    lines.push(`this session: ${session.join(", ")}`);
  }
  if (all.length > 0) {
    lines.push(`recorded: ${all.join(", ")}`);
  }
  return lines.length > 0 ? lines.join("; ") : JSON.stringify(raw);
}
