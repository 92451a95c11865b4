// Starts the deck. A file of its own rather than an inline <script>, so that the page's
// Content-Security-Policy can allow exactly the deck's scripts and nothing else.
Reveal.initialize({
  width: 1280, height: 720, margin: 0.04,
  hash: true, slideNumber: "c/t", showNotes: false, center: false,
  defaultTiming: 60,  // every slide has its own data-timing; this turns on pacing in the speaker view
  pdfMaxPagesPerSlide: 1, pdfSeparateFragments: false,
  plugins: [RevealNotes]
});
