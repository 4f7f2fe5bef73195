-- The config `make try` runs (and tests/test_neovim_e2e.py, tests/test_make_try.py):
--   cd examples/sample_project && nvim -u <repo>/neovim/try/init.lua inventory.py
-- It loads the plugin from this repository, starts `ghostcomplete serve` from PATH (or the
-- executable named by $GHOSTCOMPLETE_SERVER) and also opens models.py, because only open
-- files of the same language give the server cross-file context.
local this_file = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p')
local plugin_dir = vim.fs.dirname(vim.fs.dirname(this_file)) -- <repo>/neovim
vim.opt.runtimepath:prepend(plugin_dir)

-- Leave the user's own state alone.
vim.o.shadafile = 'NONE'
vim.o.swapfile = false

local server = vim.env.GHOSTCOMPLETE_SERVER
if server == nil or server == '' then
  server = 'ghostcomplete'
end

-- Server settings as JSON, for tests (e.g. a loopback model server): $GHOSTCOMPLETE_SETTINGS.
local settings = {}
if vim.env.GHOSTCOMPLETE_SETTINGS and vim.env.GHOSTCOMPLETE_SETTINGS ~= '' then
  settings = vim.json.decode(vim.env.GHOSTCOMPLETE_SETTINGS)
end

local ghostcomplete = require('ghostcomplete')
ghostcomplete.setup({ cmd = { server, 'serve' }, settings = settings })

vim.o.laststatus = 2
vim.o.statusline = " %f %m%=%{v:lua.require'ghostcomplete'.statusline()}  %l:%c "
vim.o.winbar = ' Tab accept · M-Right word · M-C-Right line · M-] / M-[ next/prev · C-] dismiss'
  .. ' · :GhostcompleteStatus'

vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  nested = true, -- let loading the files run their FileType autocommands
  callback = function()
    -- Load the other files of the sample project as listed buffers: each load runs FileType,
    -- which attaches the client and sends didOpen.
    for i, name in ipairs(vim.fn.glob('*.py', false, true)) do
      if i <= 20 and vim.fn.bufnr(name) == -1 then
        local bufnr = vim.fn.bufadd(name)
        vim.bo[bufnr].buflisted = true
        vim.fn.bufload(bufnr)
      end
    end
    vim.api.nvim_echo({
      {
        'ghostcomplete: press G o, type "def update_supplier(", then Tab, Tab',
        'MoreMsg',
      },
    }, false, {})
  end,
})
