-- The ghost-text renderer: draws a suggestion at the cursor with one extmark in the
-- "ghostcomplete" namespace (first line inline, the others as virtual lines below).
local text = require('ghostcomplete.text')

local api = vim.api

local M = {}

M.ns = api.nvim_create_namespace('ghostcomplete')
M.HL = 'GhostcompleteSuggestion'

function M.define_highlight()
  api.nvim_set_hl(0, M.HL, { link = 'Comment', default = true })
end

---@param bufnr integer
function M.clear(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Draw `suggestion` (the part not typed yet) as if inserted at byte (`row`, `col`), 0-based.
---@param bufnr integer
---@param row integer
---@param col integer
---@param suggestion string
---@param hint? string shown after the last line, e.g. " (2/3)"
---@return integer? extmark id
function M.show(bufnr, row, col, suggestion, hint)
  M.clear(bufnr)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
  if line == nil or col > #line then
    return nil
  end
  local tabstop = vim.bo[bufnr].tabstop
  local lines = vim.split(suggestion, '\n', { plain = true })
  local rest = line:sub(col + 1) -- the existing text after the cursor
  local start = vim.fn.strdisplaywidth(line:sub(1, col))

  local first = text.expand_tabs(lines[1], tabstop, start)
  local opts = { hl_mode = 'combine', priority = 1000 }
  local below = {}
  for i = 2, #lines do
    below[#below + 1] = { { text.expand_tabs(lines[i], tabstop), M.HL } }
  end

  if #lines > 1 and rest ~= '' then
    -- Once inserted, the text after the cursor ends up after the *last* line: draw the first
    -- line over it (padded to cover it) and show it again at the end of the last line.
    local cover = vim.fn.strdisplaywidth(rest, start) - vim.fn.strdisplaywidth(first, start)
    opts.virt_text = { { first .. string.rep(' ', math.max(cover, 0)), M.HL } }
    opts.virt_text_pos = 'overlay'
    table.insert(below[#below], { text.expand_tabs(rest, tabstop), 'Normal' })
  elseif first ~= '' then
    -- Inline virtual text pushes whatever follows the cursor to the right, just as the
    -- insertion will.
    opts.virt_text = { { first, M.HL } }
    opts.virt_text_pos = 'inline'
  end
  if hint then
    local last = #below > 0 and below[#below] or nil
    if last then
      table.insert(last, { hint, 'NonText' })
    elseif opts.virt_text then
      table.insert(opts.virt_text, { hint, 'NonText' })
    end
  end
  if #below > 0 then
    opts.virt_lines = below
  end
  if opts.virt_text == nil and opts.virt_lines == nil then
    return nil
  end
  return api.nvim_buf_set_extmark(bufnr, M.ns, row, col, opts)
end

return M
