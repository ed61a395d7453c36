-- testlib: a tiny assertion helper for the Lua test scripts (run by LuaScriptTests.swift).
local T = {passed = 0, failures = {}}

--- Runs one named test; a Lua error inside fails it (with a traceback) and the run goes on.
function T.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then T.passed = T.passed + 1 else T.failures[#T.failures + 1] = name .. ": " .. tostring(err) end
end

function T.check(cond, msg) if not cond then error(msg or "check failed", 2) end end

function T.eq(a, b, msg)
  if a ~= b then error(("%sexpected %s, got %s"):format(msg and (msg .. ": ") or "", tostring(b), tostring(a)), 2) end
end

function T.near(a, b, tol, msg)
  tol = tol or 1e-5
  if type(a) ~= "number" or math.abs(a - b) > tol * (1 + math.abs(b)) then
    error(("%sexpected %s (+-%g), got %s"):format(msg and (msg .. ": ") or "", tostring(b), tol, tostring(a)), 2)
  end
end

--- Values of tensor x (flattened) close to the flat list `want`.
function T.values(x, want, tol)
  tol = tol or 1e-4
  local flat = x:reshape(-1):tolist()
  if type(flat) == "number" then flat = {flat} end
  if #flat ~= #want then error(("expected %d values, got %d"):format(#want, #flat), 2) end
  for i = 1, #want do
    if math.abs(flat[i] - want[i]) > tol * (1 + math.abs(want[i])) then
      error(("value %d: expected %g, got %g"):format(i, want[i], flat[i]), 2)
    end
  end
end

function T.shape(x, want)
  local s = x.shape
  local ok = #s == #want
  for i = 1, #want do ok = ok and s[i] == want[i] end
  if not ok then error(("expected shape {%s}, got {%s}"):format(table.concat(want, ", "), table.concat(s, ", ")), 2) end
end

--- fn() must raise an error whose message contains `fragment` (plain text).
function T.raises(fn, fragment)
  local ok, err = pcall(fn)
  if ok then error("expected an error containing '" .. fragment .. "', but the call succeeded", 2) end
  err = tostring(err)
  if not err:find(fragment, 1, true) then error(("expected an error containing '%s', got: %s"):format(fragment, err), 2) end
  return err
end

--- Ends a script: returns (passed, failure report) to the Swift runner.
function T.report() return T.passed, table.concat(T.failures, "\n\n") end

return T
