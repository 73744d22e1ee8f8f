// The load balancer pushes /stats over /stats/stream (Server-Sent Events): one document per interval for every
// viewer, so an open dashboard costs the suite nothing per viewer. EventSource reconnects by itself after a drop
// (the server's `retry:` delay); a refused stream (503 at the balancer's cap, or a balancer without the stream)
// ends it for good, and the page then polls /stats, trying the stream again every STREAM_RETRY_POLLS polls.
"use strict";

const STREAM_PATH = "/stats/stream";
const STREAM_RETRY_POLLS = 10;

class StatsFeed {
  constructor(view, poller) {
    this.view = view;
    this.poller = poller;
    this.source = null;
  }

  start() {
    this.openStream();
  }

  openStream() {
    if (this.source || typeof EventSource === "undefined") {
      if (!this.source) this.fallBack();
      return;
    }
    const source = new EventSource(STREAM_PATH);
    this.source = source;
    source.addEventListener("open", () => {
      this.poller.stop();
      document.body.dataset.statsSource = "stream";
    });
    source.addEventListener("message", (message) => {
      let stats;
      try {
        stats = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      this.view.show(stats, null, new Date(), "live");
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        this.source = null;
        this.fallBack();
      } else {
        // Dropped: EventSource is already reconnecting.
        this.view.show(null, "the live stream from the load balancer was interrupted; reconnecting", new Date(), "live");
      }
    });
  }

  fallBack() {
    document.body.dataset.statsSource = "polling";
    this.poller.start((polls) => {
      if (polls % STREAM_RETRY_POLLS === 0) this.openStream();
    });
  }
}
