// Starts Swagger UI on the gateway's merged document. A file of its own, not an inline
// script: the page's Content-Security-Policy allows only the gateway's own scripts.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Swagger UI would otherwise have every browser fetch a badge from
    // validator.swagger.io, telling it where our spec lives.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    // Without the standalone top bar: its logo is an SVG with an inline <style>, which
    // the policy refuses, and its box for loading another document by URL has no use
    // where only the gateway may be fetched from.
    layout: "BaseLayout",
  });
});
