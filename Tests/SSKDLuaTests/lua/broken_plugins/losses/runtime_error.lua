-- a loss whose file raises while loading (line 3)
local x = nil
return x.field
