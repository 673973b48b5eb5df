package driver

import "math"

// ChiSquare is Pearson's goodness-of-fit test of observed counts against the
// proportions given by weights. It returns the statistic and the p-value with
// len(observed)-1 degrees of freedom: the probability of a deviation at least this
// large if the split really follows the weights. A p-value below 0.001 is strong
// evidence that it does not. With no observations or fewer than two categories it
// returns (0, 1).
func ChiSquare(observed []int64, weights []float64) (stat, p float64) {
	if len(observed) < 2 || len(observed) != len(weights) {
		return 0, 1
	}
	var n int64
	var wsum float64
	for i := range observed {
		n += observed[i]
		wsum += weights[i]
	}
	if n == 0 || wsum <= 0 {
		return 0, 1
	}
	for i, o := range observed {
		e := float64(n) * weights[i] / wsum
		if e == 0 {
			if o != 0 {
				return math.Inf(1), 0
			}
			continue
		}
		d := float64(o) - e
		stat += d * d / e
	}
	return stat, gammaQ(float64(len(observed)-1)/2, stat/2)
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x), the survival
// function of the chi-square distribution with 2a degrees of freedom at 2x
// (series for x < a+1, continued fraction otherwise; Numerical Recipes §6.2).
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, term := 1/a, 1/a
		for n := 1; n < 500; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 500; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}
