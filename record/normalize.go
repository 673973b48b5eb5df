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

// toMiB converts v to MiB when it is larger than total and reads as KiB or bytes of a
// figure that fits the total (the assignment's own example gives ram_libre in bytes
// next to total_ram in MiB). Otherwise v is returned unchanged.
func toMiB(v, total int64) int64 {
	if total <= 0 || v <= total {
		return v
	}
	for _, div := range []int64{1 << 10, 1 << 20} {
		if v/div <= total {
			return v / div
		}
	}
	return v
}
