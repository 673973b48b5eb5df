package record

// Normalize brings a record from another implementation of the assignment into
// vmpulse's units without inventing data: RAM figures given in bytes or KiB next to a
// total in MiB are converted to MiB, and a missing vm becomes DefaultVMName. It does
// not assign an ID (see ContentID). Normalize never makes an invalid record valid
// by clamping: out-of-range values stay as they are for Validate to reject.
func (r *Record) Normalize() {
	if r.VM == "" {
		r.VM = DefaultVMName
	}
	r.RAMLibre = toMiB(r.RAMLibre, r.TotalRAM)
	r.UsoRAM = toMiB(r.UsoRAM, r.TotalRAM)
}

// toMiB converts v to MiB when it is larger than total and reads as KiB or bytes of
// a plausible share of the total (at least 1 %): the assignment's own example gives
// ram_libre in bytes next to total_ram in MiB. A value only somewhat above the total
// is left alone, so Validate rejects it instead of guessing.
func toMiB(v, total int64) int64 {
	if total <= 0 || v <= total {
		return v
	}
	for _, div := range []int64{1 << 10, 1 << 20} {
		if m := v / div; m <= total && m*100 >= total {
			return m
		}
	}
	return v
}
