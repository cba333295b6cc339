"""Ad tags in the industry's formats: VAST 4.2 ad pods (`GET /vast/4.2`) and VMAP 1.0 break
schedules (`GET /vmap/1.0`), after IAB Tech Lab's specifications, so any standard player (IMA,
video.js, Shaka, JW Player, an SSAI stitcher) plays Interlude's pods with no custom code.

The pod is the decision engine's, and its trackers are the signed tracking links of the JSON
API (`/t/<token>/<event>`), so an event counts the same way, once, whichever road it took.

`params` reads a tag's query string, `render` writes the XML, `views` joins them with the
player id, the rate limits and the engine; `urls` mounts them."""
