package dev.offmm.examples.cache;

import java.util.SplittableRandom;

/**
 * Zipf-distributed ranks {@code 1 .. n} with exponent {@code s}, by rejection-inversion
 * (Hörmann and Derflinger, 1996; as in Apache Commons RNG): no table, O(1) per sample, any n.
 */
final class Zipf {
    private final long n;
    private final double exponent;
    private final double hIntegralX1;
    private final double hIntegralN;
    private final double sConst;

    Zipf(long n, double exponent) {
        if (n < 1 || !(exponent > 0)) {
            throw new IllegalArgumentException("n=" + n + ", exponent=" + exponent + " (expected n >= 1, exponent > 0)");
        }
        this.n = n;
        this.exponent = exponent;
        this.hIntegralX1 = hIntegral(1.5) - 1;
        this.hIntegralN = hIntegral(n + 0.5);
        this.sConst = 2 - hIntegralInverse(hIntegral(2.5) - h(2));
    }

    /** A rank in {@code 1 .. n}; rank 1 is the most frequent. */
    long sample(SplittableRandom rnd) {
        while (true) {
            double u = hIntegralN + rnd.nextDouble() * (hIntegralX1 - hIntegralN);
            double x = hIntegralInverse(u);
            long k = (long) (x + 0.5);
            if (k < 1) {
                k = 1;
            } else if (k > n) {
                k = n;
            }
            if (k - x <= sConst || u >= hIntegral(k + 0.5) - h(k)) {
                return k;
            }
        }
    }

    private double hIntegral(double x) {
        double logX = Math.log(x);
        return helper2((1 - exponent) * logX) * logX;
    }

    private double h(double x) {
        return Math.exp(-exponent * Math.log(x));
    }

    private double hIntegralInverse(double x) {
        double t = x * (1 - exponent);
        if (t < -1) {
            t = -1;
        }
        return Math.exp(helper1(t) * x);
    }

    private static double helper1(double x) {
        return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
    }

    private static double helper2(double x) {
        return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x));
    }
}
