/* dashboard_assets.h -- the dashboard's files (src/net/dashboard/), built into the binary by
 * cmake/embed.cmake so a sinkhole serves its page with nothing to install or find at run time.
 * Each array holds the file's bytes followed by one NUL that *_len does not count. */
#ifndef SINKD_NET_DASHBOARD_ASSETS_H
#define SINKD_NET_DASHBOARD_ASSETS_H

#include <stddef.h>

extern const unsigned char sinkd_dashboard_html[];
extern const size_t sinkd_dashboard_html_len;
extern const unsigned char sinkd_dashboard_js[];
extern const size_t sinkd_dashboard_js_len;
extern const unsigned char sinkd_dashboard_css[];
extern const size_t sinkd_dashboard_css_len;
/* data/web/: the world map and chart code the authorities' portal uses too. */
extern const unsigned char sinkd_dashboard_map[];
extern const size_t sinkd_dashboard_map_len;
extern const unsigned char sinkd_dashboard_charts_js[];
extern const size_t sinkd_dashboard_charts_js_len;
extern const unsigned char sinkd_dashboard_charts_css[];
extern const size_t sinkd_dashboard_charts_css_len;

#endif
