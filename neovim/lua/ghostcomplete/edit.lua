-- :GhostEdit {instruction}: rewrite the selection as instructed, through the server's
-- ghostcomplete.edit command (workspace/executeCommand). The server sends one
-- workspace/applyEdit, which Neovim applies itself (or none at all), then answers
-- {applied, message}, which is shown here. Progress arrives as $/progress on the request's
-- workDoneToken (LspProgress; statusline plugins show it); :GhostEditCancel cancels.
local client_api = require('ghostcomplete.client')
local protocol = require('ghostcomplete.protocol')

local api = vim.api

local M = {}

-- The edit in flight per buffer: {client, id}.
M.pending = {}
-- The last answer, {applied, message} (tests and statuslines may read it).
M.last = nil

local tokens = 0

local function tell(message, level)
  vim.notify('ghostcomplete: ' .. message, level or vim.log.levels.INFO)
end

-- The LSP position of a 0-based row and byte column, in the client's position encoding.
local function position(bufnr, row, col, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  col = math.min(col, #line)
  return { line = row, character = vim.lsp.util.character_offset(bufnr, row, col, encoding) }
end

-- The end of whole lines up to `last` (1-based): the start of the next line, or the end of
-- the last line of the buffer.
local function after_line(bufnr, last, encoding)
  if last < api.nvim_buf_line_count(bufnr) then
    return { line = last, character = 0 }
  end
  local text = api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ''
  return position(bufnr, last - 1, #text, encoding)
end

--- The LSP range a user command's range names: the last characterwise visual selection when
--- the command was given exactly its lines, else whole lines (the current one without a range).
function M.range(bufnr, opts, encoding)
  local first, last = opts.line1, opts.line2
  if opts.range == 0 then
    first = api.nvim_win_get_cursor(0)[1]
    last = first
  end
  local from = api.nvim_buf_get_mark(bufnr, '<')
  local to = api.nvim_buf_get_mark(bufnr, '>')
  if opts.range == 2 and vim.fn.visualmode() == 'v' and from[1] == first and to[1] == last then
    local start = position(bufnr, from[1] - 1, from[2], encoding)
    local text = api.nvim_buf_get_lines(bufnr, to[1] - 1, to[1], false)[1] or ''
    if to[2] >= #text then -- the selection takes the line break too
      return { start = start, ['end'] = after_line(bufnr, to[1], encoding) }
    end
    local stop = to[2] + 1 + vim.str_utf_end(text, to[2] + 1) -- past the last character
    return { start = start, ['end'] = position(bufnr, to[1] - 1, stop, encoding) }
  end
  local start = { line = first - 1, character = 0 }
  return { start = start, ['end'] = after_line(bufnr, last, encoding) }
end

local function send(bufnr, client, range, instruction)
  if instruction == nil or vim.trim(instruction) == '' then
    tell('no instruction given; nothing changed')
    return
  end
  tokens = tokens + 1
  local params = {
    command = protocol.COMMAND_EDIT,
    arguments = {
      { uri = vim.uri_from_bufnr(bufnr), range = range, instruction = instruction },
    },
    workDoneToken = ('ghostcomplete-edit-%d'):format(tokens),
  }
  local ok, id = client_api.request(client, protocol.EXECUTE_COMMAND, params, function(err, result)
    M.pending[bufnr] = nil
    if err ~= nil and err.code == vim.lsp.protocol.ErrorCodes.RequestCancelled then
      return -- :GhostEditCancel said so already
    end
    if err ~= nil then
      M.last = { applied = false, message = err.message or tostring(err) }
      tell('edit failed: ' .. M.last.message, vim.log.levels.ERROR)
      return
    end
    if type(result) ~= 'table' then
      return
    end
    M.last = { applied = result.applied == true, message = tostring(result.message) }
    tell(M.last.message, M.last.applied and vim.log.levels.INFO or vim.log.levels.WARN)
  end, bufnr)
  if ok then
    M.pending[bufnr] = { client = client, id = id }
    tell('editing: ' .. instruction)
  else
    tell('the server is not running', vim.log.levels.ERROR)
  end
end

--- :GhostEdit: `opts` as nvim_create_user_command passes them (args, range, line1, line2).
function M.run(opts)
  local bufnr = api.nvim_get_current_buf()
  local client = client_api.get(bufnr)
  if client == nil then
    tell('not attached to this buffer', vim.log.levels.WARN)
    return
  end
  if M.pending[bufnr] ~= nil then
    tell('an edit is already running here (:GhostEditCancel stops it)', vim.log.levels.WARN)
    return
  end
  local range = M.range(bufnr, opts, client.offset_encoding)
  if opts.args ~= nil and vim.trim(opts.args) ~= '' then
    send(bufnr, client, range, opts.args)
  else
    vim.ui.input({ prompt = 'Edit instruction: ' }, function(input)
      send(bufnr, client, range, input)
    end)
  end
end

--- :GhostEditCancel: stop the edit in flight in the current buffer ($/cancelRequest).
function M.cancel()
  local bufnr = api.nvim_get_current_buf()
  local pending = M.pending[bufnr]
  if pending == nil then
    tell('no edit is running here')
    return
  end
  M.pending[bufnr] = nil
  client_api.cancel(pending.client, pending.id)
  M.last = { applied = false, message = 'edit cancelled; the document is unchanged' }
  tell(M.last.message)
end

return M
