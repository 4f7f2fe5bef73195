-- Calls on the ghostcomplete LSP client that read the same on Neovim 0.10 and 0.11.
-- 0.11 made the client's functions methods (client:request) and warns on the old form;
-- 0.10 only has the old form (client.request).
local protocol = require('ghostcomplete.protocol')

local M = {}

local methods = vim.fn.has('nvim-0.11') == 1

local function call(client, name, ...)
  if methods then
    return client[name](client, ...)
  end
  return client[name](...)
end

--- The running ghostcomplete client attached to `bufnr`, if any.
---@param bufnr integer
---@return vim.lsp.Client?
function M.get(bufnr)
  for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr, name = protocol.CLIENT_NAME })) do
    if not (client.is_stopped and call(client, 'is_stopped')) then
      return client
    end
  end
  return nil
end

---@return boolean ok, integer? request_id
function M.request(client, method, params, handler, bufnr)
  return call(client, 'request', method, params, handler, bufnr)
end

function M.cancel(client, request_id)
  return call(client, 'cancel_request', request_id)
end

function M.notify(client, method, params)
  return call(client, 'notify', method, params)
end

--- Run an LSP command (e.g. an inline completion item's `command`) on the server.
function M.exec_cmd(client, command, bufnr, handler)
  if methods and client.exec_cmd then
    return client:exec_cmd(command, { bufnr = bufnr }, handler)
  end
  return M.request(
    client,
    protocol.EXECUTE_COMMAND,
    { command = command.command, arguments = command.arguments },
    handler or function() end,
    bufnr
  )
end

return M
