package driver

import (
	"math"
	"testing"
)

func TestChiSquareKnownValues(t *testing.T) {
	// Reference values: chi-square survival function (e.g. scipy.stats.chi2.sf).
	cases := []struct {
		obs     []int64
		w       []float64
		stat, p float64
	}{
		{[]int64{50, 50}, []float64{1, 1}, 0, 1},
		{[]int64{60, 40}, []float64{1, 1}, 4, 0.04550026389635842},
		{[]int64{1000, 1100}, []float64{50, 50}, 4.761904761904762, 0.029096331741252},
		{[]int64{30, 30, 40}, []float64{1, 1, 1}, 2, 0.36787944117144233},
		{[]int64{500, 500}, []float64{1, 0}, math.Inf(1), 0},
	}
	for _, c := range cases {
		stat, p := ChiSquare(c.obs, c.w)
		if math.Abs(stat-c.stat) > 1e-9 && !(math.IsInf(c.stat, 1) && math.IsInf(stat, 1)) {
			t.Errorf("ChiSquare(%v) stat = %v, want %v", c.obs, stat, c.stat)
		}
		if math.Abs(p-c.p) > 1e-9 {
			t.Errorf("ChiSquare(%v) p = %v, want %v", c.obs, p, c.p)
		}
	}
}
