/* Line charts as PNG: axes with numbered ticks (a built-in 5x7 bitmap
 * font), up to two y axes, coloured curves and a legend. */
#ifndef CREMA_UTIL_PLOT_H
#define CREMA_UTIL_PLOT_H

#include <stddef.h>
#include <stdint.h>

struct plot_curve {
    const char *label;
    const double *x, *y;
    size_t n;
    uint32_t rgb;   /* 0xRRGGBB */
    int right_axis; /* 0: left y axis, 1: right */
};

/* Draws the curves on a width x height canvas and writes the PNG
 * atomically. An axis with no curve is not drawn. */
int plot_png(const char *path, int width, int height, const char *xlabel, const char *left_label,
             const char *right_label, const struct plot_curve *curves, int n_curves);

#endif
