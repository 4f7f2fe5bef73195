-- One suggestion session per buffer: asking the server (debounced, newest request wins),
-- keeping what it proposed, showing the part not typed yet, accepting all or part of it.
local client_api = require('ghostcomplete.client')
local ghost = require('ghostcomplete.ghost')
local protocol = require('ghostcomplete.protocol')
local text = require('ghostcomplete.text')

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

M.debounce_ms = 75

---@class ghostcomplete.Item
---@field text string what the item inserts
---@field row integer where the insertion starts (0-based line)
---@field col integer where the insertion starts (0-based byte)
---@field end_col? integer end of the replaced text on `row` (bytes), when past the start
---@field command? table
---@field raw table the item as the server sent it (echoed in notifications)

---@class ghostcomplete.State
---@field attached boolean the client has attached (didOpen sent)
---@field items? ghostcomplete.Item[]
---@field index integer
---@field shown table<string, boolean> items reported with didShowCompletion
---@field seq integer number of the newest request
---@field pending? {client: table, id: integer, seq: integer}
---@field seen? {tick: integer, row: integer, col: integer} buffer state last reacted to
---@field expect? {tick: integer, row: integer, col: integer} state right after our own insert

---@type table<integer, ghostcomplete.State>
local states = {}

---@param bufnr integer
---@return ghostcomplete.State
function M.get(bufnr)
  local state = states[bufnr]
  if state == nil then
    state = { attached = false, index = 1, shown = {}, seq = 0 }
    states[bufnr] = state
  end
  return state
end

function M.forget(bufnr)
  M.reset(bufnr)
  states[bufnr] = nil
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function snapshot(bufnr)
  local row, col = cursor()
  return { tick = api.nvim_buf_get_changedtick(bufnr), row = row, col = col }
end

local function same(a, b)
  return a ~= nil and b ~= nil and a.tick == b.tick and a.row == b.row and a.col == b.col
end

local function item_id(item)
  local args = item.command and item.command.arguments
  return type(args) == 'table' and type(args[1]) == 'string' and args[1] or nil
end

-- Cancel the request in flight; its answer, should it still come, is dropped as stale.
local function cancel_pending(state)
  local pending = state.pending
  state.pending = nil
  state.seq = state.seq + 1
  if pending then
    pcall(client_api.cancel, pending.client, pending.id)
  end
end

local timer
local function stop_timer()
  if timer then
    timer:stop()
  end
end

--- The current item and the part of it not in the buffer yet (nil when the buffer no longer
--- agrees with the item: the user typed something else or moved away).
---@return ghostcomplete.Item?, string? remainder, string? typed
local function current(bufnr)
  local state = states[bufnr]
  local item = state and state.items and state.items[state.index]
  if item == nil or api.nvim_get_current_buf() ~= bufnr then
    return nil
  end
  local row, col = cursor()
  if row < item.row or (row == item.row and col < item.col) then
    return nil
  end
  local ok, got = pcall(api.nvim_buf_get_text, bufnr, item.row, item.col, row, col, {})
  if not ok then
    return nil
  end
  local typed = table.concat(got, '\n')
  if #typed >= #item.text or item.text:sub(1, #typed) ~= typed then
    return nil
  end
  return item, item.text:sub(#typed + 1), typed
end

--- Forget the suggestion and hide it; cancel what is in flight.
function M.reset(bufnr)
  local state = states[bufnr]
  if state then
    state.items = nil
    state.expect = nil
    cancel_pending(state)
  end
  stop_timer()
  ghost.clear(bufnr)
end

--- Draw the current item's remainder at the cursor, or drop the items if it no longer fits.
---@return boolean shown
function M.render(bufnr)
  local state = M.get(bufnr)
  local item, remainder = current(bufnr)
  if item == nil or remainder == nil then
    state.items = nil
    ghost.clear(bufnr)
    return false
  end
  -- An item that replaces text after the cursor already shows that text: draw only the rest.
  local shown = remainder
  local row, col = cursor()
  if item.end_col and row == item.row and not remainder:find('\n', 1, true) then
    local replaced = api.nvim_buf_get_text(bufnr, row, col, row, item.end_col, {})[1] or ''
    if replaced ~= '' and shown:sub(-#replaced) == replaced then
      shown = shown:sub(1, #shown - #replaced)
    end
  end
  local hint = #state.items > 1 and (' (%d/%d)'):format(state.index, #state.items) or nil
  if not ghost.show(bufnr, row, col, shown, hint) then
    return false
  end
  local id = item_id(item) or tostring(item.raw)
  if not state.shown[id] then
    state.shown[id] = true
    local client = client_api.get(bufnr)
    if client then
      client_api.notify(client, protocol.DID_SHOW_COMPLETION, { item = item.raw })
    end
  end
  return true
end

--- Items from an InlineCompletionList (or a bare item array), positions in bytes.
local function items_of(bufnr, result, encoding)
  local row, col = cursor()
  local out = {}
  for _, raw in ipairs(result.items or result) do
    local insert = raw.insertText
    if type(insert) == 'table' then
      insert = insert.value -- a StringValue snippet: shown and inserted as plain text
    end
    if type(insert) == 'string' and insert ~= '' then
      local item = { text = insert, row = row, col = col, command = raw.command, raw = raw }
      local range = raw.range
      if type(range) == 'table' and range.start then
        local line = api.nvim_buf_get_lines(bufnr, range.start.line, range.start.line + 1, false)[1]
          or ''
        item.row = range.start.line
        item.col = text.byte_col(line, range.start.character, encoding)
        if range['end'].line == item.row then
          local end_col = text.byte_col(line, range['end'].character, encoding)
          if end_col > col then
            item.end_col = end_col
          end
        end
      end
      out[#out + 1] = item
    end
  end
  return out
end

--- Ask the server for a suggestion at the cursor of the current buffer.
---@param trigger integer protocol.TriggerKind
function M.request(bufnr, trigger)
  local state = M.get(bufnr)
  local client = client_api.get(bufnr)
  if not state.attached or client == nil or api.nvim_get_current_buf() ~= bufnr then
    return
  end
  if not in_insert_mode() then
    return
  end
  cancel_pending(state)
  state.seq = state.seq + 1
  local seq = state.seq
  local asked = snapshot(bufnr)
  local encoding = client.offset_encoding or 'utf-16'
  local params = vim.lsp.util.make_position_params(0, encoding)
  params.context = { triggerKind = trigger }
  local ok, id = client_api.request(client, protocol.INLINE_COMPLETION, params, function(err, result)
    if state.pending and state.pending.seq == seq then
      state.pending = nil
    end
    -- Drop stale answers: a newer request was sent, or the buffer or cursor changed since.
    if seq ~= state.seq or err or type(result) ~= 'table' then
      return
    end
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_get_current_buf() ~= bufnr then
      return
    end
    if not in_insert_mode() or not same(asked, snapshot(bufnr)) then
      return
    end
    local items = items_of(bufnr, result, encoding)
    if #items == 0 then
      state.items = nil
      ghost.clear(bufnr)
      return
    end
    state.items, state.index, state.shown = items, 1, {}
    M.render(bufnr)
  end, bufnr)
  if ok and id then
    state.pending = { client = client, id = id, seq = seq }
  end
end

--- The server has a better suggestion for a request it answered early
--- (ghostcomplete/didFindBetter {uri, version, position}): ask again, explicitly, while the
--- buffer's version and the cursor are still that request's. The server answers from memory.
function M.ask_again(bufnr, better)
  local client = client_api.get(bufnr)
  local at = better.position
  if client == nil or type(at) ~= 'table' or not in_insert_mode() then
    return
  end
  if vim.lsp.util.buf_versions[bufnr] ~= better.version then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding or 'utf-16')
  if params.position.line ~= at.line or params.position.character ~= at.character then
    return
  end
  M.request(bufnr, protocol.TriggerKind.INVOKED)
end

--- Ask again after `debounce_ms` of quiet; a newer call restarts the wait.
function M.schedule(bufnr)
  timer = timer or uv.new_timer()
  timer:stop()
  timer:start(
    M.debounce_ms,
    0,
    vim.schedule_wrap(function()
      if api.nvim_buf_is_valid(bufnr) then
        M.request(bufnr, protocol.TriggerKind.AUTOMATIC)
      end
    end)
  )
end

--- The buffer or the cursor changed in insert mode (TextChangedI, CursorMovedI).
function M.on_edit(bufnr)
  local state = M.get(bufnr)
  if not state.attached then
    return
  end
  local now = snapshot(bufnr)
  if same(now, state.seen) then
    return -- the other of the two events for the same keystroke
  end
  state.seen = now
  local own = same(now, state.expect)
  state.expect = nil
  if state.items then
    M.render(bufnr) -- typing through a suggestion keeps showing the rest of it
  end
  if not own then
    cancel_pending(state)
    M.schedule(bufnr)
  end
end

--- Is a suggestion shown in `bufnr` now?
function M.visible(bufnr)
  return current(bufnr) ~= nil
end

--- Insert all (`how` = 'all'), one word or one line of the shown suggestion at the cursor.
---@param how 'all'|'word'|'line'
---@return boolean accepted
function M.accept(bufnr, how)
  local state = M.get(bufnr)
  local item, remainder, typed = current(bufnr)
  if item == nil or remainder == nil or typed == nil then
    return false
  end
  local piece = remainder
  if how == 'word' then
    piece = text.next_word(remainder)
  elseif how == 'line' then
    piece = text.next_line(remainder)
  end
  local full = piece == remainder
  local row, col = cursor()
  local end_col = col
  if full and item.end_col and row == item.row and item.end_col > col then
    end_col = item.end_col -- the item replaces text after the cursor
  end
  local lines = vim.split(piece, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, end_col, lines)
  local new_row = row + #lines - 1
  local new_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })

  local client = client_api.get(bufnr)
  if full then
    M.reset(bufnr)
    if client and item.command then
      client_api.exec_cmd(client, item.command, bufnr)
    end
    return true
  end
  if client then
    client_api.notify(client, protocol.DID_PARTIALLY_ACCEPT_COMPLETION, {
      item = item.raw,
      acceptedLength = text.utf16_len(typed .. piece),
    })
  end
  cancel_pending(state)
  stop_timer()
  state.expect = snapshot(bufnr)
  M.render(bufnr)
  return true
end

--- Show the next (`step` = 1) or previous (-1) item; ask the server when none is shown.
function M.cycle(bufnr, step)
  local state = M.get(bufnr)
  if not M.visible(bufnr) then
    M.request(bufnr, protocol.TriggerKind.INVOKED)
    return
  end
  state.index = (state.index - 1 + step) % #state.items + 1
  M.render(bufnr)
end

--- Hide the suggestion. Returns whether one was shown.
function M.dismiss(bufnr)
  local shown = M.visible(bufnr)
  M.reset(bufnr)
  return shown
end

--- What tests and statuslines read: the shown suggestion and where the session stands.
function M.snapshot_for(bufnr)
  local state = states[bufnr]
  local item, remainder = current(bufnr)
  return {
    attached = state ~= nil and state.attached or false,
    text = remainder,
    item = item and item.text or nil,
    index = state and state.index or nil,
    count = state and state.items and #state.items or 0,
    pending = state ~= nil and state.pending ~= nil,
  }
end

return M
