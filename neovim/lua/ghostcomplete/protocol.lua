-- The names ghostcomplete speaks, mirrored from server/protocol.py (change them together;
-- tests/test_neovim_e2e.py checks that the two agree).
local M = {}

M.CLIENT_NAME = 'ghostcomplete'

-- Standard LSP 3.18.
M.INLINE_COMPLETION = 'textDocument/inlineCompletion'
M.EXECUTE_COMMAND = 'workspace/executeCommand'
M.TriggerKind = { INVOKED = 1, AUTOMATIC = 2 }

-- Client -> server notifications (Copilot-compatible).
M.DID_FOCUS = 'textDocument/didFocus'
M.DID_SHOW_COMPLETION = 'textDocument/didShowCompletion'
M.DID_PARTIALLY_ACCEPT_COMPLETION = 'textDocument/didPartiallyAcceptCompletion'

-- Server -> client notifications.
M.DID_CHANGE_STATUS = 'ghostcomplete/didChangeStatus'
M.DID_COMPLETE = 'ghostcomplete/didComplete'
M.DID_FIND_BETTER = 'ghostcomplete/didFindBetter'

-- Commands (workspace/executeCommand).
M.COMMAND_ACCEPT = 'ghostcomplete.accept'
M.COMMAND_STATS = 'ghostcomplete.stats'
M.COMMAND_STATUS = 'ghostcomplete.status'
M.COMMAND_EDIT = 'ghostcomplete.edit'
M.COMMAND_DEBUG_DOCUMENT = 'ghostcomplete.debugDocument'
M.COMMANDS = { M.COMMAND_ACCEPT, M.COMMAND_STATS, M.COMMAND_STATUS, M.COMMAND_EDIT }

M.CONFIGURATION_SECTION = 'ghostcomplete'

M.StatusKind = {
  NORMAL = 'Normal',
  WARNING = 'Warning',
  ERROR = 'Error',
  INACTIVE = 'Inactive',
}

return M
