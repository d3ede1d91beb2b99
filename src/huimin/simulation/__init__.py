"""The synthetic campaign behind `huimin demo`: a city of residents (`city`) and a whole campaign run
through the same services the API uses, on a simulated clock (`run`)."""
