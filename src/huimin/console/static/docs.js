// Starts Swagger UI (swagger-ui-dist from the platform's own node_modules) on /docs: an external script,
// so that the page holds under the same Content-Security-Policy as every other page.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // the public validator is on the internet: never call it
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
