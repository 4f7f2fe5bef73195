-- ghostcomplete for Neovim 0.10/0.11: starts the server with vim.lsp.start and shows its
-- inline completions as ghost text. (Neovim 0.12 has this built in: see neovim/README.md.)
local client_api = require('ghostcomplete.client')
local ghost = require('ghostcomplete.ghost')
local protocol = require('ghostcomplete.protocol')
local session = require('ghostcomplete.session')

local api = vim.api

local M = {}

M.defaults = {
  cmd = { 'ghostcomplete', 'serve' },
  filetypes = {
    'python',
    'javascript',
    'typescript',
    'javascriptreact',
    'typescriptreact',
    'go',
    'rust',
    'java',
    'c',
    'cpp',
    'lua',
  },
  debounce_ms = 75,
  -- Insert-mode keys, as in copilot.vim; set one to false to leave that key alone.
  keys = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
  },
  -- Server settings (camelCase, as the server documents them), sent as initializationOptions
  -- and answered to workspace/configuration (section "ghostcomplete").
  settings = {},
  root_markers = { '.git' },
}

M.config = vim.deepcopy(M.defaults)

-- The last ghostcomplete/didChangeStatus: {kind, message, busy}.
M.last_status = nil

local function as_object(value)
  -- An empty Lua table encodes as a JSON array; the server wants objects for settings.
  if type(value) == 'table' and next(value) == nil then
    return vim.empty_dict()
  end
  return value
end

local function root_dir(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  if vim.fs.root then
    local root = vim.fs.root(bufnr, M.config.root_markers)
    if root then
      return root
    end
  else
    local found = vim.fs.find(M.config.root_markers, { path = name, upward = true })[1]
    if found then
      return vim.fs.dirname(found)
    end
  end
  return vim.fs.dirname(name)
end

local function on_status(_, result)
  if type(result) == 'table' then
    M.last_status = { kind = result.kind, message = result.message, busy = result.busy }
    api.nvim_exec_autocmds('User', { pattern = 'GhostcompleteStatus', modeline = false })
    vim.cmd.redrawstatus({ bang = true })
  end
end

-- A request answered early has a better answer now: ask again if the current buffer is
-- still where that request was made (session.ask_again checks the version and cursor).
local function on_better(_, result)
  if type(result) ~= 'table' or type(result.uri) ~= 'string' then
    return
  end
  local bufnr = api.nvim_get_current_buf()
  if vim.uri_from_bufnr(bufnr) == result.uri then
    session.ask_again(bufnr, result)
  end
end

--- Start (or reuse) the server for `bufnr`.
function M.start(bufnr)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= '' or api.nvim_buf_get_name(bufnr) == '' then
    return nil
  end
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument.inlineCompletion = { dynamicRegistration = false }
  local settings = as_object(vim.deepcopy(M.config.settings))
  return vim.lsp.start({
    name = protocol.CLIENT_NAME,
    cmd = M.config.cmd,
    root_dir = root_dir(bufnr),
    capabilities = capabilities,
    init_options = settings,
    settings = { [protocol.CONFIGURATION_SECTION] = settings },
    handlers = {
      [protocol.DID_CHANGE_STATUS] = on_status,
      [protocol.DID_FIND_BETTER] = on_better,
    },
  }, { bufnr = bufnr })
end

local function focus(bufnr)
  local client = client_api.get(bufnr)
  if client and session.get(bufnr).attached then
    client_api.notify(client, protocol.DID_FOCUS, {
      textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    })
  end
end

local function create_autocmds()
  local group = api.nvim_create_augroup('ghostcomplete', { clear = true })
  local function on(events, callback, pattern)
    api.nvim_create_autocmd(events, { group = group, pattern = pattern, callback = callback })
  end
  on('FileType', function(args)
    M.start(args.buf)
  end, M.config.filetypes)
  on('LspAttach', function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == protocol.CLIENT_NAME then
      -- Only now has the server seen didOpen; asking earlier gets answers from disk.
      session.get(args.buf).attached = true
      vim.cmd.redrawstatus({ bang = true })
      if args.buf == api.nvim_get_current_buf() then
        session.schedule(args.buf)
      end
    end
  end)
  on('LspDetach', function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == protocol.CLIENT_NAME then
      session.forget(args.buf)
    end
  end)
  on({ 'TextChangedI', 'CursorMovedI' }, function(args)
    session.on_edit(args.buf)
  end)
  on('InsertEnter', function(args)
    if session.get(args.buf).attached then
      session.schedule(args.buf)
    end
  end)
  on({ 'InsertLeave', 'BufLeave' }, function(args)
    session.reset(args.buf)
  end)
  on({ 'BufEnter', 'FocusGained' }, function(args)
    focus(args.buf)
  end)
  on({ 'BufUnload', 'BufWipeout' }, function(args)
    session.forget(args.buf)
  end)
  on('ColorScheme', ghost.define_highlight)
end

-- Keys are expr mappings: with a suggestion shown they run the action through <Cmd> (an
-- expr mapping may not change the buffer), otherwise they type the key itself.
local ACTIONS = {
  accept = { "<C-g>u<Cmd>lua require('ghostcomplete').accept()<CR>", 'accept suggestion' },
  accept_word = {
    "<C-g>u<Cmd>lua require('ghostcomplete').accept_word()<CR>",
    'accept next word of suggestion',
  },
  accept_line = {
    "<C-g>u<Cmd>lua require('ghostcomplete').accept_line()<CR>",
    'accept next line of suggestion',
  },
  next = { "<Cmd>lua require('ghostcomplete').next()<CR>", 'next suggestion' },
  prev = { "<Cmd>lua require('ghostcomplete').prev()<CR>", 'previous suggestion' },
  dismiss = { "<Cmd>lua require('ghostcomplete').dismiss()<CR>", 'dismiss suggestion' },
}

local function create_keymaps()
  for name, lhs in pairs(M.config.keys) do
    local action = ACTIONS[name]
    if lhs and action then
      local always = name == 'next' or name == 'prev'
      vim.keymap.set('i', lhs, function()
        if always and session.get(api.nvim_get_current_buf()).attached or M.visible() then
          return action[1]
        end
        return lhs
      end, { expr = true, silent = true, desc = 'ghostcomplete: ' .. action[2] })
    end
  end
end

local function status_line()
  local status = M.last_status
  local client = client_api.get(api.nvim_get_current_buf())
  local head = client and ('attached (client %d, %s)'):format(client.id, client.offset_encoding)
    or 'not attached to this buffer'
  if status == nil then
    return ('ghostcomplete: %s; no status received yet'):format(head)
  end
  local message = (status.message ~= nil and status.message ~= vim.NIL and status.message ~= '')
      and (': ' .. status.message)
    or ''
  return ('ghostcomplete: %s; %s%s%s'):format(
    head,
    status.kind,
    message,
    status.busy == true and ' (busy)' or ''
  )
end

local function create_commands()
  api.nvim_create_user_command('GhostcompleteStatus', function()
    print(status_line())
    local bufnr = api.nvim_get_current_buf()
    local client = client_api.get(bufnr)
    if client then
      client_api.exec_cmd(client, {
        title = 'status',
        command = protocol.COMMAND_STATUS,
        arguments = {},
      }, bufnr, function(err, result)
        if err == nil and type(result) == 'table' then
          print(
            ('ghostcomplete: server %s, backend %s, %s'):format(
              tostring(result.version),
              tostring(result.chosen or result.backend),
              tostring(result.kind)
            )
          )
        end
      end)
    end
  end, { desc = 'Show the ghostcomplete server status' })
  api.nvim_create_user_command('GhostEdit', function(opts)
    require('ghostcomplete.edit').run(opts)
  end, { nargs = '*', range = true, desc = 'Rewrite the selection as instructed (ghostcomplete)' })
  api.nvim_create_user_command('GhostEditCancel', function()
    require('ghostcomplete.edit').cancel()
  end, { desc = 'Cancel the running ghostcomplete edit' })
end

--- Configure and start ghostcomplete. See neovim/README.md for the options.
---@param opts? table
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  if opts and opts.filetypes then
    M.config.filetypes = opts.filetypes -- a list replaces the default list, never merges
  end
  session.debounce_ms = M.config.debounce_ms
  ghost.define_highlight()
  create_autocmds()
  create_keymaps()
  create_commands()
  -- Buffers already open when setup runs (e.g. setup called from a lazy-loaded plugin).
  local wanted = {}
  for _, ft in ipairs(M.config.filetypes) do
    wanted[ft] = true
  end
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and wanted[vim.bo[bufnr].filetype] then
      M.start(bufnr)
    end
  end
end

local function buf()
  return api.nvim_get_current_buf()
end

function M.visible()
  return session.visible(buf())
end
function M.accept()
  return session.accept(buf(), 'all')
end
function M.accept_word()
  return session.accept(buf(), 'word')
end
function M.accept_line()
  return session.accept(buf(), 'line')
end
function M.next()
  session.cycle(buf(), 1)
end
function M.prev()
  session.cycle(buf(), -1)
end
function M.dismiss()
  return session.dismiss(buf())
end

--- Where the session for `bufnr` stands: {attached, text (shown remainder), item, index,
--- count, pending}. Tests and statuslines read this.
function M.state(bufnr)
  return session.snapshot_for(bufnr == nil and buf() or bufnr)
end

--- A short status for a statusline: "ghost: Normal", "ghost: Error", ...
function M.statusline()
  if client_api.get(buf()) == nil then
    return ''
  end
  local status = M.last_status
  return 'ghost: ' .. (status and status.kind or 'Normal') .. ((status and status.busy == true) and '…' or '')
end

return M
