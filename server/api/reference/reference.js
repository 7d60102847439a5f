// Starq's API reference: Swagger UI (swagger-ui/, vendored) on the OpenAPI document this server serves.
// A file, not an inline script, so the page's Content-Security-Policy can be script-src 'self'.
"use strict";

(function () {
  var root = document.getElementById("reference");
  SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 1,
    // Swagger UI's default would send the document's address to validator.swagger.io for a badge (in layouts
    // other than this one); the page talks to this server only.
    validatorUrl: null,
    // ?url=… in the page's address may not point it at another document.
    queryConfigEnabled: false,
    // The key typed into "Authorize" stays in the page's memory: not in localStorage, gone on reload.
    persistAuthorization: false,
  });
})();
