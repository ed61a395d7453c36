-- a second 'constant' schedule: reported as a duplicate
return function(epoch) return 1 end
