-- losses.kd(student_logits, teacher_logits, targets, alpha, T) -> scalar Tensor
-- The paper's KD term: KL(softmax(teacher / T) || log_softmax(student / T)) with batch-mean
-- reduction, times T^2 (T defaults to 1; targets and alpha are ignored).
return function(s, t, y, alpha, T)
  T = T or 1
  local log_p = F.log_softmax(s / T, 1)
  local q = F.softmax(t / T, 1)
  return F.kl_div(log_p, q, {reduction = "batchmean"}) * (T * T)
end
