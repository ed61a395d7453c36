-- losses.blend(student_logits, teacher_logits, targets, alpha, T) -> scalar Tensor
-- The paper's loss: alpha * KD(s, t, T) + (1 - alpha) * CE(s, y). With alpha = 0 (the paper's
-- first five epochs) the KD term is not computed at all.
return function(s, t, y, alpha, T)
  if type(alpha) ~= "number" then
    error("losses.blend: alpha must be a number, got " .. type(alpha), 2)
  end
  local ce = F.cross_entropy(s, y)
  if alpha == 0 then return ce end
  return alpha * losses.kd(s, t, y, alpha, T) + (1 - alpha) * ce
end
