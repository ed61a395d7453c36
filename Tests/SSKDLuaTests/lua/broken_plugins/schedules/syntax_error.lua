-- a schedule with a syntax error on line 3
return function(epoch)
  return epoch +
end
