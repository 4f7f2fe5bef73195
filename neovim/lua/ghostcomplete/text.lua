-- Pure functions over strings: LSP position units and how much of a suggestion a partial
-- accept takes. No Neovim state here, so they behave the same on every version.
local M = {}

-- Byte length of the UTF-8 character that starts at byte `i` of `s`.
local function char_len(s, i)
  local b = s:byte(i)
  if b >= 0xF0 then
    return 4
  elseif b >= 0xE0 then
    return 3
  elseif b >= 0xC0 then
    return 2
  end
  return 1
end

--- Length of `s` in UTF-16 code units (what LSP counts by default).
---@param s string
---@return integer
function M.utf16_len(s)
  local n, i = 0, 1
  while i <= #s do
    local len = char_len(s, i)
    n = n + (len == 4 and 2 or 1)
    i = i + len
  end
  return n
end

--- Byte offset (0-based) in `line` of an LSP `character` counted in `encoding` units.
--- Offsets past the end of the line clamp to its length.
---@param line string
---@param character integer
---@param encoding string 'utf-8' | 'utf-16' | 'utf-32'
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local units, i = 0, 1
  while i <= #line and units < character do
    local len = char_len(line, i)
    units = units + ((encoding == 'utf-16' and len == 4) and 2 or 1)
    i = i + len
  end
  return i - 1
end

-- A word character: ASCII letters, digits, underscore, or any byte of a non-ASCII character.
local WORD = '[%w_\128-\255]'

--- What "accept word" takes from the start of `s`: blanks and punctuation, then one word.
--- At a line break it takes the break and the next line's indentation.
---@param s string
---@return string
function M.next_word(s)
  local piece = s:match('^[ \t]*[^%w_%s\128-\255]*' .. WORD .. '*')
  if piece == nil or piece == '' then
    piece = s:match('^\r?\n[ \t]*') or s:sub(1, char_len(s, 1))
  end
  return piece
end

--- What "accept line" takes from the start of `s`: the rest of the current line, or, when `s`
--- starts with a line break, the break and the whole next line.
---@param s string
---@return string
function M.next_line(s)
  local first = s:match('^[^\n]*')
  if first ~= '' then
    return first
  end
  return s:match('^\n[^\n]*')
end

--- `s` with tabs expanded to spaces (virtual text shows a tab as one cell otherwise).
---@param s string
---@param tabstop integer
---@param start_col? integer display column `s` starts at (for tab stops), default 0
---@return string
function M.expand_tabs(s, tabstop, start_col)
  if not s:find('\t', 1, true) then
    return s
  end
  local out, col = {}, start_col or 0
  for ch in s:gmatch('[%z\1-\127\192-\255][\128-\191]*') do
    if ch == '\t' then
      local width = tabstop - (col % tabstop)
      out[#out + 1] = string.rep(' ', width)
      col = col + width
    else
      out[#out + 1] = ch
      col = col + 1
    end
  end
  return table.concat(out)
end

return M
