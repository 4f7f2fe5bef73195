"""Every custom method, notification and command of ghostcomplete, in one place.

The Neovim client (neovim/lua/ghostcomplete/protocol.lua) and the VS Code extension mirror
these names; change them together.

Standard LSP: initialize (advertises inlineCompletionProvider), incremental didOpen/didChange/
didClose, textDocument/inlineCompletion, workspace/executeCommand,
workspace/didChangeConfiguration (+ workspace/configuration, section "ghostcomplete").

Client -> server notifications (Copilot-compatible; no client is required to send them):
  textDocument/didFocus                {textDocument: {uri}}
  textDocument/didShowCompletion       {item: InlineCompletionItem}
  textDocument/didPartiallyAcceptCompletion {item, acceptedLength}  (UTF-16 units)

Server -> client notifications:
  ghostcomplete/didChangeStatus  {kind: Normal|Warning|Error|Inactive, message, busy}
  ghostcomplete/didComplete      {id, uri, skipped, items, origins, timingsMs: {stage: ms},
                                  cache, backendCalled, backendCalls, prefetches, prompt,
                                  backendDetails, hybridCounts, trace}
                                 (only with debug.reportTimings = true; benchmarks read it;
                                 prompt is the rendered prompt text, for context coverage;
                                 backendDetails what the backend said about its first
                                 candidate, e.g. a model's prompt_tokens and reused_tokens;
                                 hybridCounts a hybrid's running counts of who answered;
                                 trace is a model's answer before its cut, {text, ends,
                                 chances} per token, or null; early: answered with
                                 the hybrid's early answer)
  ghostcomplete/didFindBetter    {uri, version, position: {line, character}}
                                 a request answered early (the lookup's suggestion while
                                 the model wrote: backend.hybrid.whileWaiting "lookup") has
                                 a better answer now; sent only while the document is still
                                 at that version. A client whose cursor is still there asks
                                 again (an Invoked inlineCompletion), which is answered at
                                 once from the server's caches.

Commands (workspace/executeCommand):
  ghostcomplete.accept  [completionId]     run by the client after inserting an item
  ghostcomplete.stats   []                 -> this session's counts {offered, shown, accepted,
                        partiallyAccepted, requested, rejected, noise, typedThrough,
                        retentionChecks, retained, acceptanceRate}, the store's health
                        {telemetry, database, written, dropped, droppedByReason, problem}
                        and the database totals under "recorded" (see telemetry/ and
                        `ghostcomplete stats`)
  ghostcomplete.status  []                 -> {kind, message, backend, chosen, version}
                        (+ dense: {pending, vectors} while dense retrieval is on)
  ghostcomplete.edit    [{uri, range, instruction}]
                        rewrites the range as instructed: the server answers the command
                        with {applied: bool, message: str} after sending one
                        workspace/applyEdit (or none at all: never half an edit); long edits
                        report $/progress when the client passed a workDoneToken.
                        Cancel with $/cancelRequest (answered RequestCancelled) or
                        window/workDoneProgress/cancel on that token (answered {applied:
                        false}); either way no applyEdit follows. The edit is versioned
                        (documentChanges) when the client supports it.
  ghostcomplete.debugDocument [uri?]     -> {uri, version, length, lines, sha256} of the
                        server's copy of an open document (null when not open), or, with no
                        uri, {uri: {...}} for every open document. length counts UTF-16 code
                        units, lines counts LSP lines (split at LF, CRLF and CR only), sha256
                        is of the UTF-8 text: a client checks that its buffer and ours agree.
                        Diagnostic only; clients need not mirror it.
"""

from __future__ import annotations

import enum

DID_FOCUS = "textDocument/didFocus"
DID_SHOW_COMPLETION = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT_COMPLETION = "textDocument/didPartiallyAcceptCompletion"

DID_CHANGE_STATUS = "ghostcomplete/didChangeStatus"
DID_COMPLETE = "ghostcomplete/didComplete"
DID_FIND_BETTER = "ghostcomplete/didFindBetter"

COMMAND_ACCEPT = "ghostcomplete.accept"
COMMAND_STATS = "ghostcomplete.stats"
COMMAND_STATUS = "ghostcomplete.status"
COMMAND_EDIT = "ghostcomplete.edit"
COMMAND_DEBUG_DOCUMENT = "ghostcomplete.debugDocument"
COMMANDS = (COMMAND_ACCEPT, COMMAND_STATS, COMMAND_STATUS, COMMAND_EDIT)

CONFIGURATION_SECTION = "ghostcomplete"


class StatusKind(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"
    ERROR = "Error"
    INACTIVE = "Inactive"
